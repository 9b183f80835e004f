"""Motion channels for models that need them: optical flow and foreground objects.

Torch-free and OpenCV-only, so a device computes exactly what training saw. A *motion
preprocessor* turns each BGR frame into the one tensor the graph takes as ``frame``: the
appearance channels (``edge_vad.data.appearance``) with motion channels appended, all at the
model's input size. It is stateful (flow needs the previous frame, background subtraction its
model of the scene), so every camera owns one and resets it after a gap in the stream. The
names and their channel counts are in ``edge_vad.data.spec``:

* ``flow``: appearance + DIS optical flow (previous → current frame), 2 channels.
* ``objects:K``: appearance + flow + K box masks of the foreground objects of
  the current frame (background subtraction ∪ frame differencing), largest
  first; empty slots are all zero. The graph crops its 32×32 spatio-temporal
  cubes from these, so the same boxes serve training and the device.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable

import cv2
import numpy as np

from edge_vad.data.appearance import gray as _gray
from edge_vad.data.appearance import preprocess, to_float
from edge_vad.data.objects import ObjectAttributes
from edge_vad.data.spec import MOTION_KINDS, InputSpec, parse_motion

# DIS runs on the frame at this multiple of the model's input size: at 96 px a
# walker moves a tenth of a pixel per frame, below what DIS resolves.
FLOW_UPSCALE = 2


class FlowFrames:
    """Appearance + DIS flow (in pixels at ``FLOW_UPSCALE`` × the input size)."""

    def __init__(self, spec):
        self.spec = spec
        self.flow_size = (spec.width * FLOW_UPSCALE, spec.height * FLOW_UPSCALE)
        # ULTRAFAST is DIS's real-time setting; the coarse flow is what the models need.
        self.dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST)
        self.reset()

    def reset(self) -> None:
        self.prev: np.ndarray | None = None

    def _small(self, gray: np.ndarray) -> np.ndarray:
        return cv2.resize(gray, (self.spec.width, self.spec.height), interpolation=cv2.INTER_AREA)

    def flow(self, frame_bgr: np.ndarray) -> np.ndarray:
        """2×H×W flow previous → current; zeros on the first frame.

        Only the newest pair is computed: the previous frame is kept as DIS
        input, and the flows of older pairs travel in the model's state."""
        g = cv2.resize(_gray(frame_bgr), self.flow_size, interpolation=cv2.INTER_AREA)
        if self.prev is None:
            f = np.zeros((self.spec.height, self.spec.width, 2), np.float32)
        else:
            f = self.dis.calc(self.prev, g, None)
            f = cv2.resize(f, (self.spec.width, self.spec.height), interpolation=cv2.INTER_AREA)
        self.prev = g
        return np.ascontiguousarray(f.transpose(2, 0, 1), dtype=np.float32)

    def _appearance(self, frame_bgr: np.ndarray, small: np.ndarray | None) -> np.ndarray:
        # A gray model's appearance is the gray frame at the input size, already made for flow or boxes.
        if self.spec.color == "gray" and small is not None:
            return to_float(small, self.spec)
        return preprocess(frame_bgr, _plain(self.spec))

    def __call__(self, frame_bgr: np.ndarray) -> np.ndarray:
        # One gray conversion of the full frame serves appearance and flow (each costs a pass over it).
        gray = _gray(frame_bgr)
        small = self._small(gray) if self.spec.color == "gray" else None
        return np.concatenate([self._appearance(frame_bgr, small), self.flow(gray)])


class ObjectFrames(FlowFrames):
    """Appearance + flow + K foreground box masks.

    Foreground = MOG2 background subtraction ∪ thresholded difference of the
    last frames (HF2-VAD's seed code adds such motion boxes to its detector's;
    here they are the only source, no detector runs on the device).
    """

    # On gray in [0, 255] after a 5×5 Gaussian blur, as the seed code thresholds |Δ| (18 there).
    DIFF_THRESHOLD = 18
    MIN_AREA_FRACTION = 2e-4  # of the frame; a thrown ball at vtest's scale is ~4e-4
    EXPAND = 0.15  # each side, as a fraction of the box: cubes need a little context
    MERGE_KERNEL = 3

    def __init__(self, spec):
        super().__init__(spec)
        self.slots = parse_motion(spec.motion)[1]

    def reset(self) -> None:
        super().reset()
        # Background model at the input size: cheap, and boxes are needed only there.
        self.bg = cv2.createBackgroundSubtractorMOG2(history=300, varThreshold=25, detectShadows=False)
        self.prev_small: np.ndarray | None = None

    def boxes(self, frame_bgr: np.ndarray) -> list[tuple[int, int, int, int]]:
        """Foreground boxes (x0, y0, x1, y1), inclusive, at the input size, largest first."""
        return self._boxes(self._small(_gray(frame_bgr)))

    def _boxes(self, small: np.ndarray) -> list[tuple[int, int, int, int]]:
        """``boxes`` from the gray frame already resized to the input size."""
        h, w = self.spec.height, self.spec.width
        g = cv2.GaussianBlur(small, (5, 5), 0)
        fg = self.bg.apply(g) > 0
        if self.prev_small is not None:
            fg |= cv2.absdiff(g, self.prev_small) > self.DIFF_THRESHOLD
        first = self.prev_small is None
        self.prev_small = g
        if first:
            return []  # everything is "foreground" to a background model that has seen one frame
        mask = cv2.morphologyEx(fg.astype(np.uint8), cv2.MORPH_OPEN, np.ones((2, 2), np.uint8))
        mask = cv2.dilate(mask, np.ones((self.MERGE_KERNEL, self.MERGE_KERNEL), np.uint8))
        n, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        min_area = max(4, self.MIN_AREA_FRACTION * h * w)
        found = []
        for x, y, bw, bh, area in stats[1:]:
            if area < min_area or max(bw, bh) > 10 * min(bw, bh):
                continue
            ex, ey = max(1, round(bw * self.EXPAND)), max(1, round(bh * self.EXPAND))
            found.append((area, (max(0, x - ex), max(0, y - ey), min(w - 1, x + bw - 1 + ex), min(h - 1, y + bh - 1 + ey))))
        found.sort(key=lambda t: -t[0])
        return [b for _, b in found[: self.slots]]

    def __call__(self, frame_bgr: np.ndarray) -> np.ndarray:
        # The gray frame at the input size is both the appearance (gray models) and the boxes' input.
        gray = _gray(frame_bgr)
        small = self._small(gray)
        base = np.concatenate([self._appearance(frame_bgr, small), self.flow(gray)])
        masks = np.zeros((self.slots, self.spec.height, self.spec.width), np.float32)
        for k, (x0, y0, x1, y1) in enumerate(self._boxes(small)):
            masks[k, y0 : y1 + 1, x0 : x1 + 1] = 1.0
        return np.concatenate([base, masks])


PREPROCESSORS: dict[str, Callable] = {"flow": FlowFrames, "objects": ObjectFrames, "attributes": ObjectAttributes}


def _plain(spec: InputSpec) -> InputSpec:
    """The same spec without motion: the appearance part of the tensor."""
    return replace(spec, motion=None)


assert set(PREPROCESSORS) == set(MOTION_KINDS), "every motion name in edge_vad.data.spec needs its preprocessor"


def make_motion(spec: InputSpec):
    kind, _ = parse_motion(spec.motion)
    return PREPROCESSORS[kind](spec)
