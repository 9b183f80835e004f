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
from edge_vad.runtime.daemon import exit_codes
from edge_vad.runtime.daemon.bundle_check import probe
from edge_vad.runtime.daemon.config import CameraConfig, DeviceConfig, resolve_profile
from edge_vad.runtime.alerts.delivery import DurablePublisher
from edge_vad.runtime.alerts.events import EventTracker, iso_utc, stable_id
from edge_vad.runtime.daemon.metrics import CameraStats, MetricsServer
from edge_vad.runtime.capture.motion_gate import MotionGate, MotionGateSettings
from edge_vad.runtime.alerts.mqtt import _json_safe
from edge_vad.runtime.alerts.outbox import Outbox, check_writable
from edge_vad.runtime.daemon.state_store import StateStore, atomic_write
from edge_vad.runtime.stream import CameraStream, StepResult, step_batch
from edge_vad.scoring.streaming import calibration_warning

log = logging.getLogger("edge_vad.daemon")

STATS_FILE = "stats.json"
OUTBOX_FILE = "outbox.sqlite"
ANNOUNCED_FILE = "announced.json"  # the Home Assistant discovery configs this device has retained on the broker


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
        # A recording replays the same frames after a restart: its ids are derived, not random, so
        # what a restarted replay sends again carries the msg_id it had the first time.
        self.replayable = capture.kind == "file"
        seed = f"{device_id}/{cfg.name}/{capture.source}/{bundle.id}" if self.replayable else None
        self.tracker = EventTracker(cfg.name, stream.threshold if cfg.threshold is None else cfg.threshold,
                                    end_threshold=cfg.end_threshold, min_frames=cfg.min_frames,
                                    end_frames=cfg.end_frames, update_every=cfg.update_every,
                                    device=device_id, bundle_id=bundle.id, id_seed=seed)
        # Events a killed replay left open that this replay should raise again itself (same id).
        self.orphans: dict[str, dict] = {}
        self.resume_grid: tuple[int, float] | None = None  # (frame, pacer lead s) of a resumed recording
        self.step_failures = 0
        self.step_ok = 0
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

    def resume(self, frame) -> None:
        """Put the rate grid where the killed run had it, so a resumed file keeps the same frames."""
        position, lead = self.resume_grid
        self.resume_grid = None
        interval = 1.0 / self.capture.fps if self.capture.fps else self.capture.interval
        if lead is not None and interval:
            self.rate.due = frame.timestamp - (frame.index - position) * interval + lead

    def position(self) -> dict | None:
        """Where in a recording this camera is, for the state snapshot."""
        if not self.replayable or self.last_ts is None:
            return None
        lead = None if self.rate.due is None else self.rate.due - self.last_ts
        return {"frame": self.last_index, "pacer_s": lead}

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
        check_writable(state_dir)
        self.state_dir = state_dir
        self._said: set = set()  # (what, reason) already logged: a fault that lasts is one line, not one per frame
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
            if shared is None:
                try:
                    probe(stream)  # a bundle that cannot score fails here, once, not on every frame
                except EdgeVadError as exc:
                    raise type(exc)(f"camera {cam.name}: {exc}") from None
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
        self.run_state = "running"
        self.outbox_depth_at_exit: int | None = None
        self.outbox_lost_at_exit: int | None = None
        self.refused_at_exit: list[str] = []

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
            self._end_orphans(cam, self._restore(cam))
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
                        self._end_orphans_left(cam)
                    continue
                if cam.resume_grid is not None:
                    cam.resume(frame)
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
                if self._first(("crop", cam.name, str(exc))):
                    log.error("%s; such frames are counted as corrupt, logged once", exc)
                cam.capture.counters.corrupt += 1
                continue
            groups.setdefault(id(cam.stream.backend), []).append((cam, frame, image))
        for items in groups.values():
            t0 = clock.perf_counter()
            try:
                results = step_batch([c.stream for c, _, _ in items], [im for _, _, im in items])
            except Exception as exc:  # noqa: BLE001 - one bad frame must not stop a device
                for c, _, _ in items:
                    c.step_failures += 1
                    if self._first(("step", c.name, type(exc).__name__)):
                        first_line = (str(exc).strip().splitlines() or [""])[0][:300]
                        log.error("camera %s: model step failed (%s: %s); counted in stats step_failures, "
                                  "logged once", c.name, type(exc).__name__, first_line)
                        log.debug("model step failure", exc_info=True)
                continue
            step_s = clock.perf_counter() - t0
            for (cam, frame, image), result in zip(items, results):
                self._after_step(cam, frame, image, result)
                done = clock.time()
                cam.stats.record(done - frame.timestamp if cam.capture.realtime else done - t_start,
                                 step_s / len(items), done)
                cam.adapt(done - t_start)

    def _after_step(self, cam: Camera, frame, image, result: StepResult) -> None:
        cam.step_ok += 1
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
            cam.orphans.pop(message["id"], None)  # a replay raised the killed run's event again itself
            if message["type"] == "start":
                cam.stats.events += 1
                hit = next((r for r in cam.recent if r[0] == message["peak_frame"]), None)
                cam.peak = (message["peak_score"], *hit) if hit else (result.score, frame.index, image,
                                                                       result.error_map)
            self._emit(cam, message)
        for orphan in [o for o in cam.orphans.values() if frame.index > o.get("frame_index", -1)]:
            # The replay is past where the killed run had this event and did not raise it again.
            del cam.orphans[orphan["id"]]
            self._end_orphan(cam, orphan)
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

        message = dict(message, msg_id=self._msg_id(cam, message))
        snapshot = None
        if self.config.outputs.snapshots and message["type"] in ("start", "end") and cam.peak is not None:
            _, _, image, error_map = cam.peak
            try:
                snapshot = encode(image, error_map, message["id"])
            except ValueError as exc:
                log.warning("camera %s: no snapshot (%s)", cam.name, exc)
        self._send(cam, message, snapshot)
        if message["type"] == "end":
            cam.peak = None
        log.info("event %s %s camera=%s msg_id=%s score=%.3f", message["type"], message["id"], cam.name,
                 message["msg_id"], message["score"] if message["score"] is not None else float("nan"))

    @staticmethod
    def _msg_id(cam: Camera, message: dict) -> str:
        if not cam.replayable:
            return uuid.uuid4().hex
        return stable_id(message["id"], message["type"], message.get("reason", ""), message.get("frame_index"))

    def _send(self, cam: Camera, message: dict, snapshot: bytes | None = None) -> None:
        """Queue one event message with what goes with it: its snapshot first, Home Assistant's state after.

        Every path that starts or ends an event comes through here, so the ON/OFF state can never be
        left behind (a restart's orphan end included).
        """
        base = _topic(self.prefix, self.device_id, cam.name)
        if snapshot is not None:
            message["snapshot_topic"] = f"{base}/snapshot"
            # The picture goes first, so whoever reacts to the event can fetch it.
            self.publisher.enqueue(f"{base}/snapshot", snapshot, retain=True)
        payload = json.dumps(_json_safe(message), separators=(",", ":")).encode()
        self.publisher.enqueue(f"{base}/events", payload, event=message)
        if self.config.outputs.homeassistant.enabled and message["type"] in ("start", "end"):
            self.publisher.enqueue(f"{base}/state", b"ON" if message["type"] == "start" else b"OFF", retain=True)
        cam.summary.events.append(message)
        self.produced.append(message)

    def _end_events(self, cam: Camera) -> None:
        if cam.last_ts is None:
            return
        for message in cam.tracker.flush(cam.last_index, cam.last_ts):
            self._emit(cam, message)

    def _end_orphans(self, cam: Camera, resumed_at: int) -> None:
        """End events a previous run started but never ended (it was killed).

        A recording replays deterministically: an event that started at or after the frame
        this replay resumes from will be raised again, with the same id, so it is left to
        the replay (and ended here only if the replay passes it by).
        """
        for last in self.outbox.open_events(cam.name):
            if cam.replayable and last.get("start_frame", -1) >= resumed_at:
                cam.orphans[last["id"]] = last
            else:
                self._end_orphan(cam, last)

    def _end_orphans_left(self, cam: Camera) -> None:
        for orphan in list(cam.orphans.values()):
            self._end_orphan(cam, orphan)
        cam.orphans.clear()

    def _end_orphan(self, cam: Camera, last: dict) -> None:
        now = time.time()
        message = dict(last, type="end", end_time=iso_utc(now), end_frame=last.get("frame_index"), reason="restart")
        message["msg_id"] = self._msg_id(cam, message)
        self._send(cam, message)
        log.warning("camera %s: ended event %s left open by the previous run", cam.name, last["id"])

    def _first(self, key) -> bool:
        """True the first time ``key`` is seen: a fault that lasts is logged once."""
        if key in self._said:
            return False
        self._said.add(key)
        return True

    # -- state, stats, announcements

    def _restore(self, cam: Camera) -> int:
        """Restore the camera's model state; returns the frame a recording resumes from (0: its start)."""
        snap = self.store.load(cam.name, str(cam.cfg.source), cam.bundle.id)
        if snap is None:
            return 0
        try:
            cam.stream.set_state(snap)
        except (ValueError, KeyError) as exc:
            log.warning("camera %s: state snapshot unusable (%s)", cam.name, exc)
            return 0
        cam.stats.state_restored = True
        cam.stats.state_saved_at = snap["saved_at"]
        log.info("camera %s: restored model state from %.0f s ago (frame %d)", cam.name,
                 time.time() - snap["saved_at"], snap["index"])
        position = snap.get("position")
        if not cam.replayable or not position:
            return 0
        # Replaying from frame 0 onto restored state would raise the same events again under new ids.
        cam.capture.start_at = int(position["frame"]) + 1
        cam.resume_grid = (int(position["frame"]), position.get("pacer_s"))
        return cam.capture.start_at

    def save_states(self) -> None:
        for cam in self.cameras:
            try:
                self.store.save(cam.name, str(cam.cfg.source), cam.bundle.id, cam.stream.get_state(),
                                position=cam.position())
                cam.stats.state_saved_at = time.time()
                cam.stats.state_error = None
            except OSError as exc:
                cam.stats.state_error = f"{exc.strerror or exc}"
                if self._first(("state", cam.name, exc.errno)):
                    log.error("camera %s: cannot write the state snapshot %s (%s, %s); the daemon keeps scoring "
                              "and retries every %g s", cam.name, self.store.path(cam.name), exc.strerror or exc,
                              _free(self.state_dir), self.config.state.snapshot_interval_s)

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
                "step_failures": c.step_failures, "source_error": c.capture.failure,
                "state_error": c.stats.state_error,
                "reconnects": cc.reconnects, "gaps": cc.gaps, "last_gap_s": round(cc.last_gap_s, 2),
                "state_restored": c.stats.state_restored,
                "state_age_s": None if c.stats.state_saved_at is None else round(time.time() - c.stats.state_saved_at, 1),
            }
        age = self.outbox.oldest_age()
        p, o = self.publisher, self.outbox
        return {"device": self.device_id, "time": iso_utc(time.time()), "state": self.run_state,
                "uptime_s": round(time.time() - self.started_at, 1),
                "broker": {"connected": p.connected, "reconnects": p.reconnects, "error": p.last_error,
                           "protocol": p.protocol, "refused": len(p.denied), "refused_total": p.denied_total,
                           "refused_topics": sorted(set(p.denied.values()))[:10]},
                "outbox": {"depth": o.depth(), "oldest_s": None if age is None else round(age, 1),
                           "in_memory": o.in_memory, "dropped": o.dropped, "disk_error": o.disk_error,
                           "moved_aside": None if o.moved_aside is None else str(o.moved_aside)},
                "cameras": cams}

    def publish_stats(self) -> dict:
        stats = self.stats()
        payload = json.dumps(_json_safe(stats), separators=(",", ":")).encode()
        try:
            # Group-readable: an operator in the service's group runs `edge-vad status`.
            atomic_write(self.state_dir / STATS_FILE, payload, mode=0o640)
        except OSError as exc:
            if self._first(("stats", exc.errno)):
                log.error("cannot write %s (%s, %s); retried at every stats interval", self.state_dir / STATS_FILE,
                          exc.strerror or exc, _free(self.state_dir))
        self.publisher.publish_volatile(_topic(self.prefix, self.device_id, "stats"), payload, retain=True)
        return stats

    def _announce(self) -> None:
        """Retain Home Assistant discovery configs, and clear what an earlier run announced that is gone.

        A removed or renamed camera would otherwise stay in Home Assistant as a ghost entity,
        "available", with its last state and snapshot; an empty retained payload deletes it.
        """
        from edge_vad import __version__
        from edge_vad.runtime.alerts.homeassistant import discovery_messages

        ha = self.config.outputs.homeassistant
        record = self.state_dir / ANNOUNCED_FILE
        try:
            before = json.loads(record.read_text()) if record.exists() else {}
        except (OSError, ValueError) as exc:
            log.warning("%s unreadable (%s): stale Home Assistant entities of earlier runs are not cleared", record,
                        exc)
            before = {}
        messages = discovery_messages(ha.discovery_prefix, self.prefix, self.device_id,
                                      [c.name for c in self.cameras], __version__) if ha.enabled else []
        leaves = (["snapshot"] if self.config.outputs.snapshots else []) + (["state"] if ha.enabled else [])
        now = {"configs": [t for t, _ in messages],
               "retained": [f"{_topic(self.prefix, self.device_id, c.name)}/{leaf}" for c in self.cameras
                            for leaf in leaves]}
        for key in ("configs", "retained"):
            for topic in sorted(set(before.get(key, [])) - set(now[key])):
                self.publisher.enqueue(topic, b"", retain=True)
                log.info("cleared retained %s (a camera or device that is gone)", topic)
        for topic, payload in messages:
            self.publisher.enqueue(topic, payload, retain=True)
        if now != before:
            try:
                atomic_write(record, json.dumps(now).encode())
            except OSError as exc:
                log.error("cannot write %s (%s): the next run cannot clear what this one announced", record, exc)

    def _shutdown(self, drain_timeout: float) -> None:
        log.info("shutting down: ending open events, saving state, delivering the outbox")
        for cam in self.cameras:
            cam.capture.stop()
        for cam in self.cameras:
            self._end_events(cam)
            self._end_orphans_left(cam)
        self.save_states()
        self.publish_stats()
        self.publisher.stop(drain_timeout)
        self.outbox_depth_at_exit = self.outbox.depth()
        self.refused_at_exit = sorted(set(self.publisher.denied.values()))
        # The file `edge-vad status` reads: after the outbox drained, saying the daemon stopped
        # (not "broker DISCONNECTED, camera DOWN").
        self.run_state = "stopped"
        self.publish_stats()
        if self.metrics is not None:
            self.metrics.stop()
        self.outbox_lost_at_exit = self.outbox.close()

    def outcome(self, kept: bool = True) -> tuple[int, list[str]]:
        """The exit status of a finished run (``exit_codes``) and a line for each thing that went wrong.

        ``kept``: the state dir outlives the run (not a temporary one), so undelivered messages wait there.
        """
        lines, code = [], exit_codes.OK
        for cam in self.cameras:
            if cam.step_failures and not cam.step_ok:
                code = max(code, exit_codes.BUNDLE_INVALID)
                lines.append(f"camera {cam.name}: the bundle scored no frame ({cam.step_failures} step failures)")
        for cam in self.cameras:
            if cam.capture.failure:
                code = exit_codes.SOURCE_UNUSABLE if code == exit_codes.OK else code
                lines.append(f"camera {cam.name}: source unusable: {cam.capture.failure}")
        waiting = (self.outbox_depth_at_exit or 0) + (self.outbox_lost_at_exit or 0)
        if waiting:
            code = exit_codes.UNDELIVERED if code == exit_codes.OK else code
            refused = (f"; the broker refused {'; '.join(self.refused_at_exit)}" if self.refused_at_exit else "")
            lost = (f"; {self.outbox_lost_at_exit} of them never reached the disk and are lost"
                    if self.outbox_lost_at_exit else "")
            where = (f"the rest are kept in {self.outbox.path} for the next run" if kept else
                     "they are lost with this run's temporary state dir")
            lines.append(f"{waiting} message(s) not acknowledged by the broker{refused}{lost}; {where}")
        elif code == exit_codes.OK:
            lines.append("all messages acknowledged by the broker")
        return code, lines


def _free(path: Path) -> str:
    import shutil

    try:
        return f"{shutil.disk_usage(path).free / 1e6:.1f} MB free"
    except OSError:
        return "free space unknown"


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
        code, lines = daemon.outcome(kept=state_dir is not None)
    if code != exit_codes.OK:
        where = "" if state_dir else " (pass state_dir to keep undelivered messages for a retry)"
        error = EdgeVadError(f"camera {camera_id}: " + "; ".join(lines) + where)
        error.exit_code = code
        raise error
    return summary
