"""Area downscaling with the result of ``cv2.INTER_AREA``, fast for any factor.

OpenCV's area resize has a vectorised path only for integer factors. For the
others (768×576 → 115×115 or 160×120, the stconvlstm and hf2vad inputs) it
takes 1.2–1.4 ms of a 2–10 ms frame on this project's 2-core machine. An
output pixel is the mean of the source over its box, and a box sum with
fractional edges is exact from the summed-area table: the table of a
piecewise-constant image is bilinear within each cell. So one ``cv2.integral``
(vectorised) and a bilinear read of the table at the (h+1)×(w+1) box corners
give the same pixels (differences of 1 in under 0.1 % of them, from float
rounding) in about half the time. ``benchmarks/resize.py`` measures both.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

# Below this output/input pixel ratio the table wins; at 320×240 of 768×576 (1/5.8)
# OpenCV's own resize is as fast, since the corner reads grow with the output.
_MAX_RATIO = 1 / 12


def area_resize(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``cv2.resize(img, size, interpolation=cv2.INTER_AREA)`` for uint8 images; size is (width, height)."""
    h_in, w_in = img.shape[:2]
    w, h = size
    if (
        img.ndim == 2
        and img.dtype == np.uint8
        and w * h <= _MAX_RATIO * w_in * h_in
        and (w_in % w or h_in % h)  # integer factors: OpenCV's vectorised path is faster still
    ):
        return _table(h_in, w_in, h, w)(img)
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA)


def _corners(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """Box edges i·n_in/n_out as (cell, fraction) pairs; the last edge reads the table's last cell."""
    x = np.arange(n_out + 1) * (n_in / n_out)
    cell = np.minimum(np.floor(x).astype(np.intp), n_in - 1)
    return cell, x - cell


class _SummedAreaResize:
    def __init__(self, h_in: int, w_in: int, h: int, w: int):
        yi, yf = _corners(h_in, h)
        xi, xf = _corners(w_in, w)
        self.rows = np.stack([yi, yi + 1], 1).ravel()
        self.cols = np.stack([xi, xi + 1], 1).ravel()
        self.yf, self.xf = yf[:, None], xf[None, :]
        self.h, self.w = h, w
        self.inv_area = (h * w) / (h_in * w_in)

    def __call__(self, img: np.ndarray) -> np.ndarray:
        # float64: the table reaches 255·H·W (1e8 at 768×576), past float32's exact integers.
        table = cv2.integral(img, sdepth=cv2.CV_64F)
        pair = table[self.rows].reshape(self.h + 1, 2, -1)
        at_rows = pair[:, 0] + self.yf * (pair[:, 1] - pair[:, 0])
        pair = at_rows[:, self.cols].reshape(self.h + 1, self.w + 1, 2)
        corners = pair[..., 0] + self.xf * (pair[..., 1] - pair[..., 0])
        sums = np.diff(np.diff(corners, axis=0), axis=1)
        return np.rint(sums * self.inv_area).astype(np.uint8)


@lru_cache(maxsize=16)
def _table(h_in: int, w_in: int, h: int, w: int) -> _SummedAreaResize:
    return _SummedAreaResize(h_in, w_in, h, w)
