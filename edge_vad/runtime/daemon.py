"""``edge-vad run``: a camera, a bundle and a broker, frames in and alerts out."""

from __future__ import annotations

import logging
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from edge_vad.runtime.bundle import load_bundle
from edge_vad.runtime.capture import VideoSource, resample
from edge_vad.runtime.events import EventTracker
from edge_vad.runtime.mqtt import AlertPublisher
from edge_vad.runtime.stream import CameraStream, StepResult

log = logging.getLogger("edge_vad.daemon")


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


def run_camera(
    bundle_dir: Path,
    source: str,
    camera_id: str,
    broker_url: str,
    prefix: str = "edge-vad",
    device_id: str | None = None,
    threads: int | None = None,
    on_step: Callable[[StepResult], None] | None = None,
) -> RunSummary:
    bundle = load_bundle(bundle_dir)
    stream = CameraStream(bundle, threads=threads)
    src = VideoSource(source)
    device_id = device_id or socket.gethostname()
    tracker = EventTracker(camera_id, stream.threshold, device=device_id, bundle_id=bundle.id)
    summary = RunSummary(camera_id)
    t0 = time.perf_counter()
    with AlertPublisher(broker_url, device_id, prefix=prefix) as publisher:
        last = None
        for frame in resample(src.frames(), bundle.manifest.input.fps):
            result = stream.step(frame.image)
            last = frame
            summary.frames += 1
            summary.scores.append(result.score)
            if on_step:
                on_step(result)
            for event in tracker.update(frame.index, frame.timestamp, result.score):
                publisher.publish_event(event)
                summary.events.append(event)
        if last is not None:
            for event in tracker.flush(last.index, last.timestamp):
                publisher.publish_event(event)
                summary.events.append(event)
    # Leaving the publisher's context waits for every PUBACK: the run ends only once alerts are delivered.
    summary.seconds = time.perf_counter() - t0
    return summary
