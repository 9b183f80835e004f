"""Cameras that fail, frames that are broken, and a source faster than the model."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np
import pytest

from daemon_helpers import FrameReader, ManualClock, make_config, rss_mb, vtest_frames
from helpers import free_port, wait_until
from rtsp_camera import RtspCamera

pytestmark = pytest.mark.slow


class MjpegCamera:
    """An IP camera: MJPEG over HTTP, as many cheap cameras serve it; can be unplugged."""

    def __init__(self, frames, fps: float = 20.0):
        self.jpegs = [cv2.imencode(".jpg", f)[1].tobytes() for f in frames]
        self.interval = 1.0 / fps
        self.port = free_port()
        self.server = None

    def start(self):
        cam = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                i = 0
                try:
                    while not self.server.unplugged:
                        jpg = cam.jpegs[i % len(cam.jpegs)]
                        i += 1
                        self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n"
                                         % len(jpg) + jpg + b"\r\n")
                        time.sleep(cam.interval)
                except OSError:
                    pass

            def log_message(self, *a):
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.unplugged = False
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def unplug(self):
        self.server.unplugged = True
        self.server.shutdown()
        self.server.server_close()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/stream.mjpg"


def _run(daemon):
    thread = threading.Thread(target=daemon.run, kwargs={"install_signals": False}, daemon=True)
    thread.start()
    return thread


CAMERAS = {"mjpeg-http": MjpegCamera, "rtsp": RtspCamera}


@pytest.mark.parametrize("kind", CAMERAS)
def test_camera_lost_and_back_is_reconnected_and_state_reset(daemon_bundle, mosquitto, tmp_path, kind):
    from edge_vad.runtime.daemon.scheduler import Daemon

    camera = CAMERAS[kind]([cv2.resize(f, (320, 240)) for f in vtest_frames(0, 30)], fps=20)
    camera.start()
    steps = []
    cfg = make_config(tmp_path, mosquitto, [{"name": "ipcam", "source": camera.url, "bundle": str(daemon_bundle),
                                             "reconnect_min_s": 0.3, "reconnect_max_s": 1.0,
                                             "reset_after_gap_s": 1.0}])
    daemon = Daemon(cfg, on_step=lambda cam, r: steps.append(r.index))
    thread = _run(daemon)
    cam = daemon.cameras[0]
    try:
        assert wait_until(lambda: len(steps) >= 15, 20)
        camera.unplug()
        assert wait_until(lambda: not cam.capture.connected, 10)
        before = len(steps)
        time.sleep(2.0)  # down for longer than reset_after_gap_s and a few backoff rounds
        assert len(steps) == before, "nothing is scored while the camera is away"
        camera.start()
        assert wait_until(lambda: len(steps) >= before + 15, 20)
    finally:
        daemon.stop()
        thread.join(20)
    counters = cam.capture.counters
    assert counters.reconnects >= 1 and counters.gaps >= 1 and counters.last_gap_s >= 2.0
    # The model state restarted after the gap: the stream index went back to 0 and warmed up again.
    restart = steps.index(0, 1)
    assert restart >= 15 and steps[restart:restart + 10] == list(range(10))
    assert not thread.is_alive()


def test_corrupt_and_wrongly_sized_frames_are_skipped_and_counted(daemon_bundle, mosquitto, tmp_path):
    from edge_vad.runtime.daemon.scheduler import Daemon

    good = vtest_frames(0, 40)
    bad = [None, np.zeros((0, 0, 3), np.uint8), good[0].astype(np.float32), good[0][:100, :100],
           np.zeros((576, 768, 5), np.uint8), "not an image", good[0][:, :, 0:2]]
    frames = []
    for i, f in enumerate(good):
        frames.append(f)
        if i % 5 == 2:
            frames.append(bad[(i // 5) % len(bad)])
    n_bad = len(frames) - len(good)
    cfg = make_config(tmp_path, mosquitto, [{"name": "cam", "source": "in-process", "bundle": str(daemon_bundle)}])
    steps = []
    daemon = Daemon(cfg, sources={"cam": FrameReader(frames, clock_fps=10)}, on_step=lambda c, r: steps.append(r))
    daemon.run(install_signals=False)
    counters = daemon.cameras[0].capture.counters
    assert counters.corrupt == n_bad == 8
    assert len(steps) == len(good) and counters.captured == len(frames)
    assert all(not np.isnan(s.score) for s in steps[daemon.cameras[0].stream.warmup:])


class SlowDevice:
    """The real backend, on a device that takes ``delay`` s per call (a Pi running a bigger model),
    timed on the daemon's simulated clock: the daemon must keep a steady cadence anyway."""

    def __init__(self, backend, delay: float, clock):
        self.backend, self.delay, self.clock, self.name = backend, delay, clock, backend.name

    def run(self, inputs):
        out = self.backend.run(inputs)
        self.clock.advance(self.delay)
        return out


def test_source_faster_than_model_keeps_memory_bounded_cadence_steady_and_counts_skips(
        daemon_bundle, mosquitto, tmp_path):
    """On a simulated clock (``ManualClock``): the source delivers a frame every 25 ms of it and each
    model step takes 140 ms of it, whatever the machine's load, so the daemon's decisions are exact."""
    from edge_vad.runtime.daemon.scheduler import Daemon

    frames = vtest_frames(0, 20) * 12  # 240 full-size frames at 40 fps: 6 s, ~320 MB if they queued
    cfg = make_config(tmp_path, mosquitto, [{"name": "fast", "source": "in-process", "bundle": str(daemon_bundle),
                                             "realtime": True, "budget_ms": 400}])
    stamps = []
    clock = ManualClock()
    daemon = Daemon(cfg, sources={"fast": FrameReader(frames, clock_fps=40)}, clock=clock)
    cam = daemon.cameras[0]
    cam.stream.backend = SlowDevice(cam.stream.backend, 0.14, clock)  # model period 100 ms, step 140 ms
    original = cam.admit

    def admit(ts):
        ok = original(ts)
        if ok:
            stamps.append((ts, cam.stats.stride))
        return ok

    cam.admit = admit
    rss = []
    sampler_stop = threading.Event()

    def sample():
        while not sampler_stop.wait(0.2):
            rss.append(rss_mb())

    threading.Thread(target=sample, daemon=True).start()
    start_rss = rss_mb()
    daemon.run(install_signals=False)
    sampler_stop.set()

    stats, counters = cam.stats, cam.capture.counters
    assert stats.stride == 2, "140 ms steps at a 100 ms model period: every second model frame"
    assert max(rss, default=start_rss) - start_rss < 100, f"memory grew {max(rss) - start_rss:.0f} MB"
    # Every captured frame is accounted for: scored, resampled away, thinned for the budget, or dropped.
    assert counters.captured == len(frames)
    assert stats.processed + stats.skipped_rate + stats.skipped_cadence + counters.dropped == counters.captured
    assert counters.dropped > 0 and stats.skipped_cadence > 0
    # Once the cadence settled, frames reach the model a steady 200 ms apart (± one 25 ms source frame).
    settled = [ts for ts, k in stamps if k == 2][1:]
    gaps = np.diff(settled)
    assert len(gaps) >= 10
    assert np.all(np.abs(gaps - 0.2) <= 0.0251), np.round(gaps, 3)
    # Latency: at most one source interval waiting in the slot plus the 140 ms step.
    assert stats.percentile(99) <= 140 + 25 + 1


@pytest.mark.parametrize("late_by", [0.025, 0.075, 0.175, 0.45])
def test_pacer_stays_on_its_grid_after_a_late_frame(late_by):
    """A grid frame lost while the model was busy must not make the next kept frame early."""
    from edge_vad.runtime.daemon.scheduler import _Pacer

    pacer, period, slack = _Pacer(), 0.2, 0.0125
    source = np.round(np.arange(0, 4, 0.025), 3)
    lost = {round(0.4 + k * 0.025, 3) for k in range(int(round(late_by / 0.025)))}
    kept = [ts for ts in source if ts not in lost and pacer.keep(ts, period, slack)]
    gaps = np.round(np.diff(kept), 3)
    assert kept[2] == pytest.approx(0.4 + late_by)
    assert gaps.min() >= 0.5 * period, gaps
    after = np.diff([ts for ts in kept if ts > 0.4 + late_by + 0.5])
    assert np.allclose(after, period), gaps


def test_an_rtsp_camera_delivers_the_frames_it_serves():
    """The rtsp:// path (FFmpeg in OpenCV, interleaved RTP/JPEG) decodes what the camera sent."""
    from edge_vad.runtime.capture.sources import open_source

    frames = vtest_frames(0, 4)
    camera = RtspCamera(frames, fps=10).start()
    try:
        source = open_source(camera.url)
        ok, image = source.read()
        source.release()
    finally:
        camera.unplug()
    assert ok and image.shape == frames[0].shape
    # JPEG at quality 90: close to the first frame, and farther from the others.
    errors = [float(np.abs(image.astype(np.float32) - f.astype(np.float32)).mean()) for f in frames]
    assert errors[0] < 2.0 and errors[0] < min(errors[1:]), errors


@pytest.mark.parametrize("busy", [0.14, 0.16, 0.175, 0.19])
def test_rate_and_cadence_grids_stay_aligned_when_the_model_is_busy(busy):
    """At stride 2, frames that arrive while the model works are dropped; the first one after it
    must not move the rate grid unless it is kept, or kept frames come in 125/275 ms pairs."""
    from types import SimpleNamespace

    from edge_vad.runtime.daemon.scheduler import Camera, _Pacer

    cam = SimpleNamespace(period=0.1, capture=SimpleNamespace(interval=0.025), rate=_Pacer(), cadence=_Pacer(),
                          stats=SimpleNamespace(stride=2, skipped_rate=0, skipped_cadence=0))
    kept, free_at = [], 0.0
    for ts in np.round(np.arange(0, 6, 0.025), 3):
        if ts < free_at:
            continue  # dropped by the capture thread while the model is busy
        if Camera.admit(cam, ts):
            kept.append(ts)
            free_at = ts + busy
    gaps = np.round(np.diff(kept[1:]), 3)
    assert len(gaps) >= 20 and np.all(gaps == 0.2), gaps


def test_device_threads_size_opencvs_pool_too(daemon_bundle, mosquitto, tmp_path):
    """OpenCV's pool, left at every core, burnt 0.4-1.0 ms of CPU per frame for at most 0.3 ms of latency."""
    import cv2

    from edge_vad.runtime.daemon.scheduler import Daemon

    before = cv2.getNumThreads()
    try:
        cv2.setNumThreads(2)
        cam = [{"name": "cam", "source": "in-process", "bundle": str(daemon_bundle)}]
        Daemon(make_config(tmp_path, mosquitto, cam, threads=1), sources={"cam": FrameReader([])})
        assert cv2.getNumThreads() == 1
        cv2.setNumThreads(2)
        Daemon(make_config(tmp_path / "b", mosquitto, cam), sources={"cam": FrameReader([])})
        assert cv2.getNumThreads() == 2  # no device-level threads: OpenCV keeps its own
    finally:
        cv2.setNumThreads(before)
