"""Objects in the scene and their attributes: where each is, how big, how fast, how long it has stayed.

The input of the object-attribute model (``edge_vad.models.objattr``): the motion kind
``attributes:K`` turns each BGR frame into a K×F table, one row per foreground object (largest
first), ``ATTRIBUTES`` as columns, and a validity column; empty rows are all zero. Torch-free, one
per camera (stateful: backgrounds, flow), so a device computes exactly what fitting saw.

* **Two backgrounds** at ``ANALYSIS`` size: a short-term one that absorbs what stops (in about
  ten seconds) and a long-term one that a still object does not enter for minutes. Moving =
  differs from the short-term background; still = differs from the long-term one only. Both start
  from the median of the first ``WARMUP`` frames.
* **Light**: each frame's gain against the long-term background is divided out (the median ratio
  over lit pixels); a change over most of the frame restarts both backgrounds (the stream's
  ``FrameConditioner`` re-settles the model at the same moment).
* **Ghosts**: something the backgrounds learnt that has since gone (a walker standing while they
  were learnt) leaves a still region whose rim lacks the edges, and whose inside lacks the contrast,
  that the background has there; it is learnt away at once. A real object left there has its own.
* **Speed** is the median optical flow (DIS) of an object's moving pixels, away from the frame's
  border where flow is unreliable; **stillness** is the median time its pixels have been foreground
  without changing.

Attributes are in analysis pixels, not metres: the density the model fits over them learns the
camera's perspective from where objects of each size appear.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from edge_vad.data.spec import InputSpec, parse_motion

ANALYSIS = (384, 288)  # width, height the scene is analysed at
ATTRIBUTES = ("x", "y", "log_height", "log_width", "speed", "stillness")
COLUMNS = ("valid",) + ATTRIBUTES
WARMUP = 30  # frames whose median starts the backgrounds
DIFF = 14.0  # grey levels (of 255) at which a pixel differs from a background
STILL_DIFF = 6.0  # frame-to-frame change under which a foreground pixel counts as not moving
STILL_CAP_S = 3.0  # stillness saturates here: a pause of 3 s and a stay of an hour look alike to the density
MIN_AREA = 12  # analysis pixels
MIN_STILL_SIZE = 5  # a still blob smaller than this (pixels, either side) is texture or noise
GLOBAL_CHANGE = 0.4
BORDER = 3  # pixels at the frame's edge whose flow is not used
SHORT_RATE, SHORT_RATE_FOREGROUND = 0.05, 0.01
LONG_RATE, LONG_RATE_STILL = 0.01, 0.0005


def _edges(img: np.ndarray) -> np.ndarray:
    return np.abs(cv2.Sobel(img, cv2.CV_32F, 1, 0)) + np.abs(cv2.Sobel(img, cv2.CV_32F, 0, 1))


class ObjectAttributes:
    """``attributes:K``: BGR frame → K×(1+len(ATTRIBUTES)) float32 table (module docstring)."""

    def __init__(self, spec: InputSpec, fps: float | None = None):
        self.spec = spec
        self.slots = parse_motion(spec.motion)[1]
        self.fps = fps or spec.fps or 10.0
        self.dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST)
        self.reset()

    def reset(self) -> None:
        self.short: np.ndarray | None = None
        self.long: np.ndarray | None = None
        self.prev: np.ndarray | None = None
        self.age = np.zeros(ANALYSIS[::-1], np.float32)
        self._warm: list[np.ndarray] = []
        self.objects: list[dict] = []  # the last frame's objects, in the order of the table's rows
        self.scale = (1.0, 1.0)  # source pixels per analysis pixel (x, y)

    # -- the scene ---------------------------------------------------------------------------------

    def _gray(self, frame_bgr: np.ndarray) -> np.ndarray:
        h, w = frame_bgr.shape[:2]
        self.scale = (w / ANALYSIS[0], h / ANALYSIS[1])
        gray = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2GRAY) if frame_bgr.ndim == 3 else frame_bgr
        small = cv2.resize(gray, ANALYSIS, interpolation=cv2.INTER_AREA)
        return cv2.GaussianBlur(small, (3, 3), 0).astype(np.float32)

    def _normalised(self, g: np.ndarray) -> np.ndarray:
        ref, cur = self.long[::4, ::4], g[::4, ::4]
        lit = ref > 20
        gain = float(np.median(cur[lit] / ref[lit])) if lit.sum() > 100 else 1.0
        return g / gain if math.isfinite(gain) and gain > 0.05 else g

    def _forget_ghosts(self, g, moving, still_fg) -> None:
        settled = (moving | still_fg) & (self.age >= 10)
        n, labels, stats, _ = cv2.connectedComponentsWithStats(settled.astype(np.uint8), connectivity=8)
        if n <= 1:
            return
        reference = np.where(still_fg, self.long, self.short)
        now_edges, ref_edges = _edges(g), _edges(reference)
        H, W = g.shape
        for j in range(1, n):
            x, y, w, h, area = stats[j]
            if area < MIN_AREA:
                continue
            x0, y0, x1, y1 = max(0, x - 5), max(0, y - 5), min(W, x + w + 5), min(H, y + h + 5)
            m = (labels[y0:y1, x0:x1] == j).astype(np.uint8)
            inside = m > 0
            rim = (cv2.dilate(m, np.ones((3, 3), np.uint8)) - cv2.erode(m, np.ones((3, 3), np.uint8))) > 0
            ring = (cv2.dilate(m, np.ones((7, 7), np.uint8)) > 0) & ~inside
            if not ring.any():
                continue
            now, ref = g[y0:y1, x0:x1], reference[y0:y1, x0:x1]
            contrast_now = abs(float(now[inside].mean()) - float(now[ring].mean()))
            contrast_ref = abs(float(ref[inside].mean()) - float(ref[ring].mean()))
            if (now_edges[y0:y1, x0:x1][rim].sum() < 0.7 * ref_edges[y0:y1, x0:x1][rim].sum()
                    or contrast_now < 0.7 * contrast_ref):
                for bg in (self.long, self.short):
                    bg[y0:y1, x0:x1][inside] = now[inside]
                for mask in (moving, still_fg):
                    mask[y0:y1, x0:x1][inside] = False

    def _scene(self, frame_bgr: np.ndarray):
        """(gray, moving mask, still mask) of this frame, or None while the backgrounds are learnt."""
        g = self._gray(frame_bgr)
        if self.long is None:
            self._warm.append(g)
            self.prev = g
            if len(self._warm) < WARMUP:
                return None
            self.long = np.median(np.stack(self._warm), 0).astype(np.float32)
            self.short = self.long.copy()
            self._warm = []
        g = self._normalised(g)
        moving = np.abs(g - self.short) > DIFF
        away = np.abs(g - self.long) > DIFF
        if away.mean() > GLOBAL_CHANGE:
            self.long, self.short = g.copy(), g.copy()
            self.age[:] = 0
            self.prev = g
            return g, np.zeros_like(moving), np.zeros_like(moving)
        still_fg = away & ~moving
        unchanged = (moving | away) & (np.abs(g - self.prev) < STILL_DIFF)
        self.age = np.where(unchanged, self.age + 1, 0).astype(np.float32)
        self._forget_ghosts(g, moving, still_fg)
        self.short += np.where(moving, SHORT_RATE_FOREGROUND, SHORT_RATE).astype(np.float32) * (g - self.short)
        rate = np.where(moving, 0.0, np.where(still_fg, LONG_RATE_STILL, LONG_RATE)).astype(np.float32)
        self.long += rate * (g - self.long)
        return g, moving, still_fg

    # -- the objects -------------------------------------------------------------------------------

    def _objects(self, g, moving, still_fg) -> list[dict]:
        mask = cv2.morphologyEx((moving | still_fg).astype(np.uint8), cv2.MORPH_OPEN, np.ones((5, 3), np.uint8))
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((5, 3), np.uint8))
        flow = self.dis.calc(self.prev.clip(0, 255).astype(np.uint8), g.clip(0, 255).astype(np.uint8), None)
        H, W = g.shape
        inner = np.zeros((H, W), bool)
        inner[BORDER:H - BORDER, BORDER:W - BORDER] = True
        n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        found = []
        for i in range(1, n):
            x, y, w, h, area = (int(v) for v in stats[i])
            if area < MIN_AREA:
                continue
            m = labels[y:y + h, x:x + w] == i
            still_s = float(np.median(self.age[y:y + h, x:x + w][m])) / self.fps
            if still_s >= 1.0 and max(w, h) < MIN_STILL_SIZE:
                continue
            flowing = m & moving[y:y + h, x:x + w] & inner[y:y + h, x:x + w]
            v = np.median(flow[y:y + h, x:x + w][flowing], axis=0) if flowing.sum() >= 3 else np.zeros(2, np.float32)
            found.append({"box": (x, y, w, h), "area": area,
                          "attributes": [(x + w / 2) / W, (y + h) / H, math.log(h), math.log(w),
                                         min(float(math.hypot(*v)), 20.0), min(still_s, STILL_CAP_S) / STILL_CAP_S]})
        found.sort(key=lambda o: -o["area"])
        return found

    def __call__(self, frame_bgr: np.ndarray) -> np.ndarray:
        table = np.zeros((self.slots, len(COLUMNS)), np.float32)
        scene = self._scene(frame_bgr)
        self.objects = []
        if scene is not None:
            g, moving, still_fg = scene
            self.objects = self._objects(g, moving, still_fg)[: self.slots]
            self.prev = g
            for k, o in enumerate(self.objects):
                table[k, 0] = 1.0
                table[k, 1:] = o["attributes"]
                x, y, w, h = o["box"]
                sx, sy = self.scale
                o["box_source"] = [round(x * sx), round(y * sy), round(w * sx), round(h * sy)]
        return table
