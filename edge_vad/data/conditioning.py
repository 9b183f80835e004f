"""Frame conditioning: undo what the camera did before any model looks at the scene.

A fixed camera's normal footage still changes in ways no anomaly detector should see: it shakes
(wind, traffic, a loose mount), its light drifts (dusk, clouds) or jumps (lights on, IR switch).
Every model here scores change, so each of these would read as an anomaly over the whole frame.
``FrameConditioner`` keeps a slow reference of the empty scene and, per frame:

* **photometric**: the frame's gain against the reference, the median ratio over the reference's
  lit pixels (walkers are a minority of them), divided out;
* **shake**: corners of the reference tracked into the frame (pyramidal Lucas–Kanade), their
  median displacement warped back when it is more than a fifth of a pixel (walkers are a minority
  of corners; brightness is corrected first, as LK assumes it constant);
* **global change**: when, after both, most of the frame still differs from the reference, the
  scene itself changed (a light came on unevenly, the camera moved): the reference restarts from
  this frame and the caller is told to re-settle (model state reset, no alerts while it warms up)
  instead of alerting.

Analysis runs on a small gray copy (at most 384 px wide); the correction is applied to the full
frame. Numpy and OpenCV only, one per camera; ``reset`` after a gap in the stream.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

ANALYSIS_WIDTH = 384
DIFF = 14.0  # grey levels (of 255) at which a pixel differs from the reference
GLOBAL_CHANGE = 0.4  # share of differing pixels that means the scene changed, not something in it
MIN_SHIFT = 0.2  # analysis pixels below which a shift is noise, not shake
MAX_SHIFT = 12.0  # analysis pixels above which the estimate is not trusted (camera moved: global change)
MIN_GAIN_CHANGE = 0.03
REFRESH_CORNERS = 50  # frames between re-picking the reference's corners


@dataclass
class Conditioned:
    image: np.ndarray  # BGR, corrected
    gain: float  # frame brightness / reference brightness (divided out)
    shift: tuple[float, float]  # camera displacement in full-frame pixels (warped back)
    resettle: bool = False  # the scene changed as a whole: reset state, don't alert while warming up


class FrameConditioner:
    def __init__(self, photometric: bool = True, stabilize: bool = True, global_change: bool = True):
        self.photometric, self.stabilize, self.global_change = photometric, stabilize, global_change
        self.reset()

    def reset(self) -> None:
        self.ref: np.ndarray | None = None
        self._corners = None
        self._ref8 = None
        self._frames = 0

    def _small(self, frame_bgr: np.ndarray) -> tuple[np.ndarray, float]:
        h, w = frame_bgr.shape[:2]
        scale = min(1.0, ANALYSIS_WIDTH / w)
        size = (max(8, round(w * scale)), max(8, round(h * scale)))
        gray = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2GRAY) if frame_bgr.ndim == 3 else frame_bgr
        small = cv2.resize(gray, size, interpolation=cv2.INTER_AREA) if scale < 1 else gray
        return cv2.GaussianBlur(small, (3, 3), 0).astype(np.float32), scale

    def _gain(self, g: np.ndarray) -> float:
        ref, cur = self.ref[::4, ::4], g[::4, ::4]
        lit = ref > 20
        if lit.sum() < 50:
            return 1.0
        return float(np.median(cur[lit] / ref[lit]))

    def _shift(self, g: np.ndarray) -> tuple[float, float]:
        if self._corners is None or self._frames % REFRESH_CORNERS == 0:
            self._ref8 = self.ref.clip(0, 255).astype(np.uint8)
            self._corners = cv2.goodFeaturesToTrack(self._ref8, 300, 0.01, 8)
        if self._corners is None or len(self._corners) < 10:
            return 0.0, 0.0
        moved, ok, _ = cv2.calcOpticalFlowPyrLK(self._ref8, g.clip(0, 255).astype(np.uint8), self._corners, None,
                                                winSize=(15, 15), maxLevel=2)
        ok = ok.ravel() == 1
        if ok.sum() < 10:
            return 0.0, 0.0
        dx, dy = np.median((moved[ok] - self._corners[ok]).reshape(-1, 2), axis=0)
        return float(dx), float(dy)

    def __call__(self, frame_bgr: np.ndarray) -> Conditioned:
        g, scale = self._small(frame_bgr)
        if self.ref is None or self.ref.shape != g.shape:
            self.reset()
            self.ref = g
            return Conditioned(frame_bgr, 1.0, (0.0, 0.0))
        self._frames += 1
        gain = self._gain(g) if self.photometric else 1.0
        gain = gain if math.isfinite(gain) and gain > 0.05 else 1.0
        g = g / gain
        dx, dy = self._shift(g) if self.stabilize else (0.0, 0.0)
        if math.hypot(dx, dy) > MAX_SHIFT:
            dx = dy = 0.0
        elif math.hypot(dx, dy) >= MIN_SHIFT:
            g = cv2.warpAffine(g, np.float32([[1, 0, -dx], [0, 1, -dy]]), g.shape[::-1], flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE)
        else:
            dx = dy = 0.0
        differs = np.abs(g - self.ref) > DIFF
        if self.global_change and differs.mean() > GLOBAL_CHANGE:
            self.ref = g
            self._corners = None
            return Conditioned(frame_bgr, 1.0, (0.0, 0.0), resettle=True)
        # The reference follows the empty scene: fast where the frame agrees with it, barely where
        # something stands in front of it (a walker must not become the reference).
        rate = np.where(differs, 0.002, 0.03).astype(np.float32)
        self.ref += rate * (g - self.ref)
        image = frame_bgr
        if dx or dy:
            h, w = frame_bgr.shape[:2]
            m = np.float32([[1, 0, -dx / scale], [0, 1, -dy / scale]])
            image = cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        if abs(gain - 1.0) >= MIN_GAIN_CHANGE:
            image = cv2.convertScaleAbs(image, alpha=1.0 / gain)
        return Conditioned(image, gain, (dx / scale, dy / scale))
