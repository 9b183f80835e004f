"""Skip the model while nothing in view moves.

A parking lot at night or an empty corridor is still for hours; running a
0.2–1.4 GFLOP model on every frame of it buys nothing. The gate compares a
small gray thumbnail of each frame with the thumbnail of the last frame the
model saw (not the previous frame, so slow changes add up until they count).
Once the view has been still for as long as the model's window (its warm-up
frames), the model's state holds nothing but that view and its score is the
score of a still scene; from then on the camera repeats that result and the
model rests. The state stays right: the frames skipped are copies of the ones
the model saw last, so when something moves, the model continues from the
same scene.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class MotionGateSettings:
    #: about how wide the thumbnail the frames are compared on is: area averaging
    #: over ~5×5 source pixels removes sensor noise but keeps a distant walker
    width: int = 160
    #: a thumbnail pixel "changed" when it differs by more than this (0-255 gray levels)
    pixel_delta: int = 6
    #: the frame "moves" when more than this fraction of thumbnail pixels changed
    min_changed: float = 0.0005


class MotionGate:
    def __init__(self, settings: MotionGateSettings | None = None):
        self.settings = settings or MotionGateSettings()
        self._ref: np.ndarray | None = None
        self._sizes: dict[tuple[int, int], tuple[int, int]] = {}

    def reset(self) -> None:
        self._ref = None

    def still(self, frame_bgr: np.ndarray) -> bool:
        """True when ``frame_bgr`` shows what the model last saw; otherwise it becomes the new reference."""
        s = self.settings
        gray = frame_bgr if frame_bgr.ndim == 2 else cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2GRAY)
        h, w = gray.shape
        size = self._sizes.get((w, h)) or self._sizes.setdefault((w, h), thumbnail_size(w, h, s.width))
        thumb = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
        if self._ref is not None and self._ref.shape == thumb.shape:
            changed = np.count_nonzero(cv2.absdiff(thumb, self._ref) > s.pixel_delta)
            if changed <= s.min_changed * thumb.size:
                return True
        self._ref = thumb
        return False


def thumbnail_size(w: int, h: int, width: int) -> tuple[int, int]:
    """(width, height) of the thumbnail: a whole number of source pixels per side when one divides both
    sides near ``w / width``, since OpenCV's area resize then sums blocks (0.28 ms for 768×576 → 192×144,
    against 1.23 ms for 160×120 on one core); otherwise ``width`` wide with the frame's aspect."""
    target = w / width
    for k in sorted(range(max(1, int(target * 0.75)), int(target * 1.25) + 2), key=lambda k: abs(k - target)):
        if w % k == 0 and h % k == 0:
            return w // k, h // k
    return width, max(1, round(h * width / w))
