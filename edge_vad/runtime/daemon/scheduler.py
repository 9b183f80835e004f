"""``edge-vad run``: cameras in, alerts out, for months on end.

Threads: one capture thread per camera (newest frame wins), one sender thread
delivering the durable outbox, paho's network thread, an optional metrics
server; the scheduler runs in the caller's thread and owns the models, the
event trackers and everything else that changes per frame, so none of that
needs a lock.
"""

from __future__ import annotations

import json
import logging
import math
import signal
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from edge_vad.errors import EdgeVadError
from edge_vad.runtime.bundle.loader import Bundle, load_bundle
from edge_vad.runtime.capture.sources import CaptureThread
from edge_vad.runtime.clock import SYSTEM_CLOCK
from edge_vad.runtime.daemon.config import CameraConfig, DeviceConfig, resolve_profile
from edge_vad.runtime.alerts.delivery import DurablePublisher
from edge_vad.runtime.alerts.events import EventTracker, iso_utc
from edge_vad.runtime.daemon.metrics import CameraStats, MetricsServer
from edge_vad.runtime.capture.motion_gate import MotionGate, MotionGateSettings
from edge_vad.runtime.alerts.mqtt import _json_safe
from edge_vad.runtime.alerts.outbox import Outbox
from edge_vad.runtime.daemon.state_store import StateStore, atomic_write
from edge_vad.runtime.stream import CameraStream, StepResult, step_batch
from edge_vad.scoring.streaming import calibration_warning

log = logging.getLogger("edge_vad.daemon")

STATS_FILE = "stats.json"
OUTBOX_FILE = "outbox.sqlite"


@dataclass
class RunSummary:
    camera: str
    frames: int = 0
    events: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    scores: list[float] = field(default_factory=list)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0


class _Pacer:
    """Picks frames on a fixed time grid of ``period`` (source clock).

    The grid advances in whole periods, so kept frames stay evenly spaced; a
    frame is "on" a grid point if it is at most ``slack`` early (half a source
    frame interval). A frame that arrives late (its grid frame was dropped while
    the model was busy) moves the next grid point past it by at least half a
    period: advancing by exactly one period would let the very next frame in
    early and turn a steady cadence into short/long pairs.
    """

    def __init__(self):
        self.due: float | None = None

    def keep(self, ts: float, period: float, slack: float, commit: bool = True) -> bool:
        """Whether ``ts`` is on the grid; ``commit=False`` asks without moving the grid."""
        if self.due is None:
            if commit:
                self.due = ts + period
            return True
        if ts < self.due - slack:
            return False
        if not commit:
            return True
        self.due += period
        if self.due < ts + 0.5 * period:
            self.due += period * math.ceil((ts + 0.5 * period - self.due) / period)
        return True

    def reset(self) -> None:
        self.due = None


class Camera:
    """One camera's runtime: capture, model stream, events, statistics."""

    #: processing-time samples the cadence decision looks at
    WINDOW = 20

    def __init__(self, cfg: CameraConfig, bundle: Bundle, stream: CameraStream, capture: CaptureThread,
                 device_id: str, budget_ms: float | None):
        self.cfg = cfg
        self.name = cfg.name
        self.bundle = bundle
        self.stream = stream
        self.capture = capture
        fps = cfg.fps or bundle.manifest.input.fps
        self.period = 1.0 / fps if fps else None
        budget = budget_ms or (self.period * 1000 if self.period else 100.0)
        self.stats = CameraStats(cfg.name, budget)
        self.tracker = EventTracker(cfg.name, stream.threshold if cfg.threshold is None else cfg.threshold,
                                    end_threshold=cfg.end_threshold, min_frames=cfg.min_frames,
                                    end_frames=cfg.end_frames, update_every=cfg.update_every,
                                    device=device_id, bundle_id=bundle.id)
        self.rate = _Pacer()  # the model's frame rate
        self.cadence = _Pacer()  # the model's rate times the stride the budget allows
        self.work: deque[float] = deque(maxlen=self.WINDOW)
        self.recent: deque = deque(maxlen=cfg.min_frames + 2)  # (index, image, error_map) for snapshots
        self.peak: tuple | None = None  # (score, index, image, error_map) of the open event
        self.last_ts: float | None = None
        self.last_index = 0
        self.last_score_sent = 0.0
        self.ended = False
        self.summary = RunSummary(cfg.name)
        self._roi: tuple[int, int, int, int] | None = None

    # -- frame selection

    def admit(self, ts: float) -> bool:
        """Resample to the model's rate, then thin to the cadence that fits the budget."""
        if self.period is None:
            return True
        interval = self.capture.interval
        slack = 0.5 * min(self.period, interval) if interval else 0.5 * self.period
        # The rate grid moves only for a frame that is kept: moved for a frame the cadence
        # then thins away, it ran ahead of the cadence's grid, and under load the kept frames
        # came in short/long pairs (125/275 ms at a 200 ms cadence).
        if not self.rate.keep(ts, self.period, slack, commit=False):
            self.stats.skipped_rate += 1
            return False
        if self.stats.stride > 1 and not self.cadence.keep(ts, self.period * self.stats.stride, slack):
            self.stats.skipped_cadence += 1
            return False
        self.rate.keep(ts, self.period, slack)
        return True

    def adapt(self, work_s: float) -> None:
        """Pick the stride (in model periods) that the measured processing time fits.

        A recurrent model must see evenly spaced frames, so instead of taking
        whatever frame is newest when it is free, the scheduler commits to
        every k-th model period; k moves only after a full window of evidence.
        """
        self.work.append(work_s)
        if not self.capture.realtime or self.period is None or len(self.work) < self.WINDOW:
            return
        # Nearest-rank p90 of 20 samples: np.percentile costs more than the rest of a frame's bookkeeping.
        p90 = sorted(self.work)[math.ceil(0.9 * len(self.work)) - 1]
        need = max(1, math.ceil(p90 / (0.9 * self.period)))
        k = self.stats.stride
        if need > k or (need < k and p90 < 0.6 * (k - 1) * self.period):
            log.info("camera %s: cadence every %d model frame(s) (p90 processing %.0f ms, period %.0f ms)",
                     self.name, need, p90 * 1000, self.period * 1000)
            self.stats.stride = need
            self.cadence.reset()
            self.work.clear()

    def crop(self, image: np.ndarray) -> np.ndarray:
        if self.cfg.roi is None:
            return image
        if self._roi is None:
            x, y, w, h = self.cfg.roi
            H, W = image.shape[:2]
            x2, y2 = min(W, x + w), min(H, y + h)
            if x >= W or y >= H:
                raise EdgeVadError(f"camera {self.name}: roi {self.cfg.roi} lies outside the {W}×{H} frame")
            if (x2, y2) != (x + w, y + h):
                log.warning("camera %s: roi %s clipped to the %d×%d frame", self.name, self.cfg.roi, W, H)
            self._roi = (x, y, x2, y2)
        x, y, x2, y2 = self._roi
        return image[y:y2, x:x2]


def _topic(prefix: str, device: str, *parts: str) -> str:
    return "/".join([prefix.strip("/"), device, *parts])


class Daemon:
    def __init__(self, config: DeviceConfig, sources: dict | None = None,
                 on_step: Callable[[str, StepResult], None] | None = None, clock=None):
        self.config = config
        self.clock = clock or SYSTEM_CLOCK
        self.device_id = config.device_id
        self.prefix = config.prefix
        self.on_step = on_step
        self.stop_event = threading.Event()
        self.produced: list[dict] = []  # every event message queued, in order (for callers and tests)
        state_dir = Path(config.state.dir)
        state_dir.mkdir(parents=True, exist_ok=True)
        self.state_dir = state_dir
        self.store = StateStore(state_dir, config.state.max_age_s)
        self.cameras: list[Camera] = []
        if config.threads:
            import cv2

            # Preprocessing (resize, flow) runs on the scoring thread and gets the engine's thread count:
            # OpenCV's own pool, sized to every core, spent 0.4–1.0 ms of CPU per 768×576 frame in its
            # workers while cutting the scoring thread's time by at most 0.3 ms (docs/daemon.md).
            cv2.setNumThreads(config.threads)
        backends: dict[Path, CameraStream] = {}
        bundles: dict[Path, Bundle] = {}
        for cam in config.cameras:
            profile = resolve_profile(cam.profile)
            root = Path(cam.bundle).resolve()
            if root not in bundles:
                try:
                    bundles[root] = load_bundle(root)
                except EdgeVadError as exc:
                    raise EdgeVadError(f"camera {cam.name}: {exc}") from None
            bundle = bundles[root]
            threads = config.threads or profile.get("threads")
            shared = backends.get(root) if config.batch else None
            gate = None
            if cam.motion_gate is not None:
                gate = MotionGate(MotionGateSettings(**cam.motion_gate.model_dump()))
            stream = CameraStream(bundle, backend=shared.backend if shared else None, threads=threads,
                                  motion_gate=gate)
            backends.setdefault(root, stream)
            source = (sources or {}).get(cam.name, cam.source)
            capture = CaptureThread(cam.name, source, realtime=cam.realtime,
                                    reconnect=(cam.reconnect_min_s, cam.reconnect_max_s), clock=self.clock)
            self.cameras.append(Camera(cam, bundle, stream, capture, self.device_id,
                                       cam.budget_ms or profile.get("budget_ms")))
        for first in backends.values():
            sharing = sum(c.stream.backend is first.backend for c in self.cameras)
            prepare = getattr(first.backend, "prepare", None)
            if prepare is not None and sharing > 1:
                # Any number of the sharing cameras may have a frame ready in one round: compile
                # every batch size now, not on the scoring thread at its first round.
                prepare(range(1, sharing + 1))
        self.outbox = Outbox(state_dir / OUTBOX_FILE)
        self.publisher = DurablePublisher(config.broker, _topic(self.prefix, self.device_id, "available"),
                                          self.outbox)
        self.metrics: MetricsServer | None = None
        self._wake = threading.Event()
        self._last_stats = 0.0
        self._last_snapshot = self.clock.monotonic()
        self.started_at = time.time()
        self.outbox_depth_at_exit: int | None = None

    # -- lifecycle

    def run(self, install_signals: bool = True, drain_timeout: float = 10.0) -> dict[str, RunSummary]:
        if install_signals and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: self.stop_event.set())
        t0 = time.perf_counter()
        self.publisher.start()
        if self.config.metrics.enabled:
            self.metrics = MetricsServer(self, self.config.metrics.host, self.config.metrics.port).start()
        self._announce()
        for cam in self.cameras:
            self._restore(cam)
            self._end_orphans(cam)
            # Capture threads wake the scheduler when a frame lands.
            cam.capture._put = _notifying(cam.capture._put, self._wake)
            cam.capture.start()
        for cam in self.cameras:
            weak = calibration_warning(cam.stream.calibration, fix="edge-vad calibrate CKPT --data NORMAL_VIDEO, "
                                       "then convert again (or set this camera's threshold)")
            if weak and cam.cfg.threshold is None:
                log.warning("camera %s: %s", cam.name, weak)
        log.info("daemon %s running %d camera(s): %s", self.device_id, len(self.cameras),
                 ", ".join(f"{c.name} ({c.stats.budget_ms:.0f} ms budget)" for c in self.cameras))
        try:
            self._loop()
        finally:
            self._shutdown(drain_timeout)
        for cam in self.cameras:
            cam.summary.seconds = time.perf_counter() - t0
        return {c.name: c.summary for c in self.cameras}

    def stop(self) -> None:
        self.stop_event.set()
        self._wake.set()

    def _loop(self) -> None:
        while not self.stop_event.is_set():
            ready: list[tuple[Camera, object]] = []
            for cam in self.cameras:
                if cam.ended:
                    continue
                frame = cam.capture.take(0)
                if frame is None:
                    if cam.capture.ended and not cam.capture.peek_ready():
                        cam.ended = True
                        self._end_events(cam)
                    continue
                self._gap(cam, frame)
                if not cam.admit(frame.timestamp):
                    continue
                ready.append((cam, frame))
            if ready:
                self._process(ready)
            elif all(c.ended for c in self.cameras):
                break
            else:
                self.clock.wait(self._wake, 0.05)
                self._wake.clear()
            self._periodic()

    def _gap(self, cam: Camera, frame) -> None:
        """A break in the stream (camera lost, or frames missing) resets the scene."""
        gap = frame.gap
        if cam.last_ts is not None:
            gap = max(gap, frame.timestamp - cam.last_ts)
        if gap >= cam.cfg.reset_after_gap_s:
            # The scene moved on while we were blind: old state would predict the wrong frames.
            log.warning("camera %s: %.1f s gap in the stream; model state reset", cam.name, gap)
            cam.capture.counters.gaps += 0 if frame.gap else 1
            cam.capture.counters.last_gap_s = gap
            self._end_events(cam)
            cam.stream.reset()
            cam.rate.reset()
            cam.cadence.reset()
        cam.last_ts = frame.timestamp

    def _process(self, ready: list) -> None:
        clock = self.clock
        t_start = clock.time()
        groups: dict[int, list] = {}
        for cam, frame in ready:
            try:
                image = cam.crop(frame.image)
            except EdgeVadError as exc:
                log.error("%s", exc)
                cam.capture.counters.corrupt += 1
                continue
            groups.setdefault(id(cam.stream.backend), []).append((cam, frame, image))
        for items in groups.values():
            t0 = clock.perf_counter()
            try:
                results = step_batch([c.stream for c, _, _ in items], [im for _, _, im in items])
            except Exception as exc:  # noqa: BLE001 - one bad frame must not stop a device
                log.exception("model step failed for %s: %s", ", ".join(c.name for c, _, _ in items), exc)
                for c, _, _ in items:
                    c.capture.counters.corrupt += 1
                continue
            step_s = clock.perf_counter() - t0
            for (cam, frame, image), result in zip(items, results):
                self._after_step(cam, frame, image, result)
                done = clock.time()
                cam.stats.record(done - frame.timestamp if cam.capture.realtime else done - t_start,
                                 step_s / len(items), done)
                cam.adapt(done - t_start)

    def _after_step(self, cam: Camera, frame, image, result: StepResult) -> None:
        cam.stats.held += result.held
        cam.summary.frames += 1
        cam.summary.scores.append(result.score)
        cam.last_index = frame.index
        if self.on_step is not None:
            self.on_step(cam.name, result)
        cam.recent.append((frame.index, image, result.error_map))
        if cam.tracker.active and result.error_map is not None and (cam.peak is None or result.score > cam.peak[0]):
            cam.peak = (result.score, frame.index, image, result.error_map)
        for message in cam.tracker.update(frame.index, frame.timestamp, result.score):
            if message["type"] == "start":
                cam.stats.events += 1
                hit = next((r for r in cam.recent if r[0] == message["peak_frame"]), None)
                cam.peak = (message["peak_score"], *hit) if hit else (result.score, frame.index, image,
                                                                       result.error_map)
            self._emit(cam, message)
        if cam.cfg.score_topic and not math.isnan(result.score):
            now = self.clock.monotonic()
            if now - cam.last_score_sent >= 1.0 / cam.cfg.score_rate_hz:
                cam.last_score_sent = now
                self.publisher.publish_volatile(
                    _topic(self.prefix, self.device_id, cam.name, "score"),
                    json.dumps({"time": iso_utc(frame.timestamp), "frame": frame.index,
                                "score": round(result.score, 4)}).encode())

    # -- events

    def _emit(self, cam: Camera, message: dict) -> None:
        from edge_vad.runtime.alerts.snapshots import encode

        message = dict(message, msg_id=uuid.uuid4().hex)
        base = _topic(self.prefix, self.device_id, cam.name)
        snapshot = None
        if self.config.outputs.snapshots and message["type"] in ("start", "end") and cam.peak is not None:
            _, _, image, error_map = cam.peak
            try:
                snapshot = encode(image, error_map, message["id"])
            except ValueError as exc:
                log.warning("camera %s: no snapshot (%s)", cam.name, exc)
        if snapshot is not None:
            message["snapshot_topic"] = f"{base}/snapshot"
            # The picture goes first, so whoever reacts to the event can fetch it.
            self.publisher.enqueue(f"{base}/snapshot", snapshot, retain=True)
        payload = json.dumps(_json_safe(message), separators=(",", ":")).encode()
        self.publisher.enqueue(f"{base}/events", payload, event=message)
        if self.config.outputs.homeassistant.enabled and message["type"] in ("start", "end"):
            self.publisher.enqueue(f"{base}/state", b"ON" if message["type"] == "start" else b"OFF", retain=True)
        if message["type"] == "end":
            cam.peak = None
        cam.summary.events.append(message)
        self.produced.append(message)
        log.info("event %s %s camera=%s msg_id=%s score=%.3f", message["type"], message["id"], cam.name,
                 message["msg_id"], message["score"] if message["score"] is not None else float("nan"))

    def _end_events(self, cam: Camera) -> None:
        if cam.last_ts is None:
            return
        for message in cam.tracker.flush(cam.last_index, cam.last_ts):
            self._emit(cam, message)

    def _end_orphans(self, cam: Camera) -> None:
        """End events a previous run started but never ended (it was killed)."""
        for last in self.outbox.open_events(cam.name):
            now = time.time()
            message = dict(last, type="end", end_time=iso_utc(now), end_frame=last.get("frame_index"),
                           reason="restart", msg_id=uuid.uuid4().hex)
            payload = json.dumps(_json_safe(message), separators=(",", ":")).encode()
            self.publisher.enqueue(_topic(self.prefix, self.device_id, cam.name, "events"), payload, event=message)
            cam.summary.events.append(message)
            self.produced.append(message)
            log.warning("camera %s: ended event %s left open by the previous run", cam.name, last["id"])

    # -- state, stats, announcements

    def _restore(self, cam: Camera) -> None:
        snap = self.store.load(cam.name, str(cam.cfg.source), cam.bundle.id)
        if snap is None:
            return
        try:
            cam.stream.set_state(snap)
        except (ValueError, KeyError) as exc:
            log.warning("camera %s: state snapshot unusable (%s)", cam.name, exc)
            return
        cam.stats.state_restored = True
        cam.stats.state_saved_at = snap["saved_at"]
        log.info("camera %s: restored model state from %.0f s ago (frame %d)", cam.name,
                 time.time() - snap["saved_at"], snap["index"])

    def save_states(self) -> None:
        for cam in self.cameras:
            try:
                self.store.save(cam.name, str(cam.cfg.source), cam.bundle.id, cam.stream.get_state())
                cam.stats.state_saved_at = time.time()
            except OSError as exc:
                log.error("camera %s: cannot write the state snapshot (%s)", cam.name, exc)

    def _periodic(self) -> None:
        now = self.clock.monotonic()
        if now - self._last_stats >= self.config.outputs.stats_interval_s:
            self._last_stats = now
            self.publish_stats()
        if now - self._last_snapshot >= self.config.state.snapshot_interval_s:
            self._last_snapshot = now
            self.save_states()

    def stats(self) -> dict:
        cams = {}
        for c in self.cameras:
            cc = c.capture.counters
            cams[c.name] = {
                "fps": round(c.stats.fps, 2), "processed": c.stats.processed, "captured": cc.captured,
                "skipped": {"rate": c.stats.skipped_rate, "cadence": c.stats.skipped_cadence,
                            "dropped": cc.dropped, "corrupt": cc.corrupt},
                "late": c.stats.late, "held_still": c.stats.held, "stride": c.stats.stride,
                "budget_ms": c.stats.budget_ms,
                "latency_ms": {"p50": c.stats.percentile(50), "p90": c.stats.percentile(90),
                               "p99": c.stats.percentile(99)},
                "step_ms": {"p50": c.stats.percentile(50, "steps")},
                "events": c.stats.events, "camera_connected": c.capture.connected,
                "reconnects": cc.reconnects, "gaps": cc.gaps, "last_gap_s": round(cc.last_gap_s, 2),
                "state_restored": c.stats.state_restored,
                "state_age_s": None if c.stats.state_saved_at is None else round(time.time() - c.stats.state_saved_at, 1),
            }
        age = self.outbox.oldest_age()
        return {"device": self.device_id, "time": iso_utc(time.time()),
                "uptime_s": round(time.time() - self.started_at, 1),
                "broker": {"connected": self.publisher.connected, "reconnects": self.publisher.reconnects,
                           "error": self.publisher.last_error},
                "outbox": {"depth": self.outbox.depth(), "oldest_s": None if age is None else round(age, 1)},
                "cameras": cams}

    def publish_stats(self) -> dict:
        stats = self.stats()
        payload = json.dumps(_json_safe(stats), separators=(",", ":")).encode()
        try:
            atomic_write(self.state_dir / STATS_FILE, payload)
        except OSError as exc:
            log.error("cannot write %s (%s)", self.state_dir / STATS_FILE, exc)
        self.publisher.publish_volatile(_topic(self.prefix, self.device_id, "stats"), payload, retain=True)
        return stats

    def _announce(self) -> None:
        ha = self.config.outputs.homeassistant
        if not ha.enabled:
            return
        from edge_vad import __version__
        from edge_vad.runtime.alerts.homeassistant import discovery_messages

        for topic, payload in discovery_messages(ha.discovery_prefix, self.prefix, self.device_id,
                                                 [c.name for c in self.cameras], __version__):
            self.publisher.enqueue(topic, payload, retain=True)

    def _shutdown(self, drain_timeout: float) -> None:
        log.info("shutting down: ending open events, saving state, delivering the outbox")
        for cam in self.cameras:
            cam.capture.stop()
        for cam in self.cameras:
            self._end_events(cam)
        self.save_states()
        self.publish_stats()
        self.publisher.stop(drain_timeout)
        self.outbox_depth_at_exit = self.outbox.depth()
        self.publish_stats()  # the file `edge-vad status` reads: after the outbox drained
        if self.metrics is not None:
            self.metrics.stop()
        self.outbox.close()


def _notifying(put, wake: threading.Event):
    def wrapped(frame):
        put(frame)
        wake.set()

    return wrapped


def setup_logging(verbose: bool = False, fmt: str = "text") -> None:
    level = logging.INFO if verbose else logging.WARNING
    handler = logging.StreamHandler()
    if fmt == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {"time": iso_utc(record.created), "level": record.levelname.lower(), "logger": record.name,
               "message": record.getMessage()}
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out)


# ------------------------------------------------------------- single camera


def run_camera(
    bundle_dir: Path,
    source: str,
    camera_id: str,
    broker_url: str,
    prefix: str = "edge-vad",
    device_id: str | None = None,
    threads: int | None = None,
    on_step: Callable[[StepResult], None] | None = None,
    state_dir: Path | None = None,
) -> RunSummary:
    """Score one camera or file through the full daemon and return when every event is acknowledged.

    The same path as ``edge-vad run``: durable outbox, snapshots, stats. Without a
    ``state_dir`` the outbox lives in a temporary folder, so an alert the broker
    never acknowledged would be lost with it: that is an error, not a silence.
    """
    import tempfile

    from edge_vad.runtime.daemon.config import config_from_flags

    with tempfile.TemporaryDirectory(prefix="edge-vad-run-") as tmp:
        cfg = config_from_flags(bundle_dir, source, camera_id, broker_url, prefix, device_id,
                                state_dir or tmp, threads)
        daemon = Daemon(cfg, on_step=(lambda _name, result: on_step(result)) if on_step else None)
        summary = daemon.run(install_signals=False)[camera_id]
        waiting = daemon.outbox_depth_at_exit
    if waiting:
        where = f"they are kept in {state_dir}" if state_dir else "pass state_dir to keep them for a retry"
        raise EdgeVadError(f"camera {camera_id}: {waiting} message(s) not acknowledged by {broker_url}; {where}")
    return summary
