"""Frame sources: video files, V4L2 devices / OpenCV indices, RTSP/HTTP streams.

Every frame carries a capture timestamp. Files are timed by their own clock
(start of playback + position), so a file replays like a camera but as fast as
the model allows, and the stream ends when the file does.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from edge_vad.errors import EdgeVadError


@dataclass
class Frame:
    image: np.ndarray  # BGR uint8
    timestamp: float  # seconds since the epoch, at capture
    index: int  # position in the source, counting every decoded frame


def _is_device(source: str) -> bool:
    return source.isdigit() or source.startswith("/dev/video")


def _is_stream(source: str) -> bool:
    return "://" in source


class VideoSource:
    def __init__(self, source: str):
        self.source = str(source)
        self.is_file = not (_is_device(self.source) or _is_stream(self.source))
        if self.is_file and not Path(self.source).exists():
            raise EdgeVadError(f"{self.source}: no such video file or camera device")
        target = int(self.source) if self.source.isdigit() else self.source
        self.cap = cv2.VideoCapture(target)
        if not self.cap.isOpened():
            raise EdgeVadError(f"{self.source}: cannot open video source")
        fps = self.cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and fps > 0 else None

    def frames(self) -> Iterator[Frame]:
        start = time.time()
        index = 0
        try:
            while True:
                ok, image = self.cap.read()
                if not ok:
                    return
                if self.is_file and self.fps:
                    ts = start + index / self.fps
                else:
                    ts = time.time()
                yield Frame(image, ts, index)
                index += 1
        finally:
            self.cap.release()


def resample(frames: Iterator[Frame], fps: float | None) -> Iterator[Frame]:
    """Keep frames at the model's training frame rate (recurrent models learned that spacing)."""
    if not fps:
        yield from frames
        return
    period = 1.0 / fps
    due = None
    for f in frames:
        # Half a period of slack so a 30 fps camera feeding a 10 fps model keeps every third frame.
        if due is None or f.timestamp >= due - 0.5 * period:
            due = (f.timestamp if due is None else max(due, f.timestamp - 0.5 * period)) + period
            yield f
