"""Turn a camera's per-frame anomaly scores into alert events.

A raw score crossing the threshold is far too noisy to alert on: one bright
frame would page someone, and a score hovering at the threshold would flap
between "anomaly" and "normal" many times a second. ``EventTracker`` therefore

* starts an event only after ``min_frames`` consecutive frames at or above
  ``threshold`` (a short spike never becomes an event),
* ends it only after ``end_frames`` consecutive frames below a lower
  ``end_threshold`` (hysteresis: a score wobbling just under the threshold
  keeps the event open),
* reports progress every ``update_every`` frames so a subscriber sees that a
  long event is still going on and how bad it got.

The tracker is pure bookkeeping (no clock, no I/O), so it can be unit-tested
frame by frame and reused by any publisher.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

from edge_vad.errors import EdgeVadError

#: ``end_threshold`` defaults to ``threshold * (1 - HYSTERESIS)`` (for a
#: positive threshold). 10 % is wide enough to absorb frame-to-frame jitter of
#: a score that sits near the threshold, and narrow enough that an event still
#: ends soon after the scene returns to normal. Scores have no fixed scale, so
#: the margin is relative to the threshold rather than an absolute number.
HYSTERESIS = 0.10


def iso_utc(timestamp: float) -> str:
    """``1700000000.5`` -> ``'2023-11-14T22:13:20.500Z'`` (seconds since the epoch)."""
    moment = datetime.fromtimestamp(float(timestamp), tz=timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def stable_id(*parts) -> str:
    """A 32-hex id that is the same whenever ``parts`` are (uuid5), for ids a replay must reproduce."""
    return uuid.uuid5(uuid.NAMESPACE_URL, "edge-vad:" + "/".join(map(str, parts))).hex


def default_end_threshold(threshold: float) -> float:
    return threshold - HYSTERESIS * abs(threshold)


@dataclass
class _Frame:
    index: int
    timestamp: float
    score: float


@dataclass
class _ActiveEvent:
    id: str
    start: _Frame
    peak: _Frame
    last: _Frame
    last_report_index: int


class EventTracker:
    """Hysteresis + minimum-duration event detection for one camera.

    ``timestamp`` arguments are seconds since the Unix epoch (``time.time()``
    or a video's start time plus the frame offset).
    """

    def __init__(
        self,
        camera: str,
        threshold: float,
        end_threshold: float | None = None,
        min_frames: int = 3,
        end_frames: int = 5,
        update_every: int = 10,
        device: str = "",
        bundle_id: str = "",
        id_seed: str | None = None,
    ):
        threshold = float(threshold)
        if math.isnan(threshold):
            raise EdgeVadError("the event threshold is NaN; pass a number")
        end_threshold = default_end_threshold(threshold) if end_threshold is None else float(end_threshold)
        if math.isnan(end_threshold) or end_threshold > threshold:
            raise EdgeVadError(
                f"end_threshold ({end_threshold}) must be a number no higher than threshold ({threshold})"
            )
        for name, value, lowest in (("min_frames", min_frames, 1), ("end_frames", end_frames, 1),
                                    ("update_every", update_every, 0)):
            if int(value) != value or value < lowest:
                raise EdgeVadError(f"{name} must be an integer >= {lowest}, got {value!r}")
        self.camera = camera
        self.threshold = threshold
        self.end_threshold = end_threshold
        self.min_frames = int(min_frames)
        self.end_frames = int(end_frames)
        self.update_every = int(update_every)  # 0 disables updates
        self.device = device
        self.bundle_id = bundle_id
        # A replayed recording gets the same event ids on every replay (ids from the seed and the
        # start frame), so a consumer can drop what a restarted replay sends again.
        self.id_seed = id_seed
        self._high_run: list[_Frame] = []  # candidate start, while idle
        self._low_run: list[_Frame] = []  # candidate end, while active
        self._active: _ActiveEvent | None = None

    @property
    def active(self) -> bool:
        return self._active is not None

    @property
    def event_id(self) -> str | None:
        return self._active.id if self._active else None

    def update(self, frame_index: int, timestamp: float, score: float) -> list[dict]:
        """Feed one frame; returns the messages to publish now (usually none)."""
        score = float(score)
        frame = _Frame(int(frame_index), float(timestamp), score)
        if self._active is None:
            return self._update_idle(frame)
        return self._update_active(frame)

    def flush(self, frame_index: int, timestamp: float) -> list[dict]:
        """End the open event, if any: the stream stopped or the runtime is shutting down."""
        self._high_run.clear()
        event = self._active
        if event is None:
            return []
        # If the score had already dropped, the anomaly ended there, not at shutdown.
        end = self._low_run[0] if self._low_run else _Frame(int(frame_index), float(timestamp), event.last.score)
        now = _Frame(int(frame_index), float(timestamp), event.last.score)
        return [self._finish(end, now)]

    def _update_idle(self, frame: _Frame) -> list[dict]:
        # NaN (model still warming up) is "not anomalous": it breaks a run.
        if not frame.score >= self.threshold:
            self._high_run.clear()
            return []
        self._high_run.append(frame)
        if len(self._high_run) < self.min_frames:
            return []
        run, self._high_run = self._high_run, []
        peak = max(run, key=lambda f: f.score)
        event_id = uuid.uuid4().hex if self.id_seed is None else stable_id(self.id_seed, run[0].index)
        self._active = _ActiveEvent(id=event_id, start=run[0], peak=peak, last=frame, last_report_index=frame.index)
        return [self._message("start", frame)]

    def _update_active(self, frame: _Frame) -> list[dict]:
        event = self._active
        assert event is not None
        if math.isnan(frame.score):
            # A NaN mid-event says nothing about the scene (dropped or
            # undecodable frame); it neither extends nor ends the event.
            return []
        event.last = frame
        if frame.score > event.peak.score:
            event.peak = frame
        if frame.score < self.end_threshold:
            self._low_run.append(frame)
            if len(self._low_run) >= self.end_frames:
                return [self._finish(self._low_run[0], frame)]
        else:
            self._low_run.clear()
        # Strided inputs skip frame numbers, so count by index, not by calls.
        if self.update_every and frame.index - event.last_report_index >= self.update_every:
            event.last_report_index = frame.index
            return [self._message("update", frame)]
        return []

    def _finish(self, end: _Frame, now: _Frame) -> dict:
        message = self._message("end", now, end=end)
        self._active = None
        self._low_run.clear()
        return message

    def _message(self, kind: str, now: _Frame, end: _Frame | None = None) -> dict:
        event = self._active
        assert event is not None
        return {
            "id": event.id,
            "device": self.device,
            "camera": self.camera,
            "type": kind,
            "start_time": iso_utc(event.start.timestamp),
            "end_time": iso_utc(end.timestamp) if end else None,
            "start_frame": event.start.index,
            "end_frame": end.index if end else None,
            "frame_index": now.index,
            "peak_score": event.peak.score,
            "peak_frame": event.peak.index,
            "score": now.score,
            "threshold": self.threshold,
            "bundle_id": self.bundle_id,
        }
