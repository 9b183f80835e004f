"""Real people cut out of the footage (the runner), the median background they are cut against, and the
walkers that stand in front of an injected object."""

from __future__ import annotations

import math

import cv2
import numpy as np

from edge_vad.data.testset.layers import Sprite
from edge_vad.data.testset.scene import person_height, scene_scale
from edge_vad.errors import EdgeVadError


def median_background(frames: list[np.ndarray], step: int = 5) -> np.ndarray:
    """Per-pixel median of every ``step``-th frame: the plaza without its walkers."""
    return np.median(np.stack(frames[::step]), axis=0).astype(np.uint8)


def _foreground(frame: np.ndarray, background: np.ndarray) -> np.ndarray:
    b, g, r = cv2.split(cv2.absdiff(frame, background))
    diff = cv2.max(cv2.max(b, g), r)  # much faster than ndarray.max(axis=2) on uint8
    mask = (diff > 35).astype(np.uint8)
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    return cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((9, 5), np.uint8))


def _person_blobs(mask: np.ndarray, width: int) -> list[tuple[int, int, int, int]]:
    """Boxes of blobs shaped and sized like one walker at their foot row."""
    n, _, stats, _ = cv2.connectedComponentsWithStats(mask)
    boxes = []
    for x, y, w, h, area in stats[1:]:
        expected = person_height(y + h, width)
        if 1.8 * w < h < 4 * w and 0.85 * expected < h < 1.2 * expected and area > 0.3 * w * h:
            boxes.append((int(x), int(y), int(w), int(h)))
    return boxes


def _isolated(box, mask: np.ndarray, margin: int) -> bool:
    x, y, w, h = box
    H, W = mask.shape
    if x < margin or y < margin or x + w > W - margin or y + h > H - margin:
        return False
    ring = mask[y - margin:y + h + margin, x - margin:x + w + margin].sum()
    return int(ring) == int(mask[y:y + h, x:x + w].sum())


def find_walker(frames: list[np.ndarray], background: np.ndarray, rng: np.random.Generator):
    """A lone walker to cut out: (frame index, box, facing -1/+1)."""
    width = frames[0].shape[1]
    candidates = []
    for i in range(0, len(frames) - 3, 3):
        mask = _foreground(frames[i], background)
        for box in _person_blobs(mask, width):
            if _isolated(box, mask, margin=12) and not _behind_occluder(box, width):
                candidates.append((i, box))
    if not candidates:
        raise EdgeVadError("no lone walker found in these frames to cut out for the 'running' anomaly")
    i, box = candidates[int(rng.integers(len(candidates)))]
    return i, box, _facing(frames, background, i, box)


def _behind_occluder(box, width: int) -> bool:
    s = scene_scale(width)
    x, y, w, h = box
    return x < 450 * s and x + w > 395 * s


def _facing(frames, background, i: int, box) -> int:
    """Which way the walker heads, from where their blob is three frames later."""
    x, y, w, h = box
    later = _person_blobs(_foreground(frames[i + 3], background), frames[0].shape[1])
    near = [b for b in later if abs((b[0] + b[2] / 2) - (x + w / 2)) < w * 1.5 and abs(b[1] + b[3] - y - h) < h / 3]
    if not near:
        return 1
    dx = (near[0][0] + near[0][2] / 2) - (x + w / 2)
    return 1 if dx >= 0 else -1


def cutout(frame: np.ndarray, background: np.ndarray, box) -> Sprite:
    """The walker with a soft mask from frame differencing, anchored at their feet."""
    x, y, w, h = box
    m = max(4, w // 3)
    x0, y0 = max(0, x - m), max(0, y - m)
    x1, y1 = min(frame.shape[1], x + w + m), min(frame.shape[0], y + h + m)
    patch = frame[y0:y1, x0:x1].astype(np.float32)
    fg = _foreground(frame[y0:y1, x0:x1], background[y0:y1, x0:x1])
    n, labels, stats, _ = cv2.connectedComponentsWithStats(fg)
    keep = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA])) if n > 1 else 0
    mask = (labels == keep).astype(np.uint8)
    # Fill holes (a jacket close to the pavement's grey) so the runner is solid.
    filled = mask.copy()
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(filled, contours, -1, 1, -1)
    # Erode before feathering so the soft edge falls inside the person, not on
    # the pavement around them (which would show as a grey halo on grass).
    alpha = cv2.GaussianBlur(cv2.erode(filled, np.ones((3, 3), np.uint8)).astype(np.float32), (0, 0), 0.8)
    return Sprite(patch * alpha[..., None], alpha, (x + w / 2 - x0, y + h - y0))


def runner_pose(sprite: Sprite, scale: float, lean: float) -> Sprite:
    """Scale the cut-out for its new depth and lean it into the run."""
    h, w = sprite.alpha.shape
    ax, ay = sprite.anchor
    pad = int(h * abs(lean)) + 2
    # x' = s*x + lean*s*(ay - y): the head moves forward, the feet stay put.
    m = np.array([[scale, -lean * scale, scale * (pad + lean * ay)], [0.0, scale, 0.0]], np.float32)
    out_w, out_h = int((w + 2 * pad) * scale) + 1, int(h * scale) + 1
    flags = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    premul = cv2.warpAffine(sprite.premul, m, (out_w, out_h), flags=flags, borderValue=0)
    alpha = cv2.warpAffine(sprite.alpha, m, (out_w, out_h), flags=flags, borderValue=0)
    return Sprite(premul, alpha, (scale * (ax + pad), scale * ay))




def walkers_in_front(frame: np.ndarray, background: np.ndarray, ground_row: float) -> np.ndarray | None:
    """Soft mask of real people nearer the camera than the object (feet lower in the image)."""
    n, blobs, stats, _ = cv2.connectedComponentsWithStats(_foreground(frame, background))
    bottoms = stats[:, cv2.CC_STAT_TOP] + stats[:, cv2.CC_STAT_HEIGHT]
    front = (bottoms > ground_row + 2) & (stats[:, cv2.CC_STAT_AREA] > 60)
    front[0] = False
    if not front.any():
        return None
    mask = front[blobs].astype(np.float32)
    return cv2.GaussianBlur(cv2.dilate(mask, np.ones((3, 3), np.uint8)), (0, 0), 0.8)


def walked_spots(frames: list[np.ndarray], background: np.ndarray, rng: np.random.Generator, n: int = 1,
                 margin: int = 40) -> list[tuple[float, float]]:
    """Foot points of real walkers in these frames: places on the walkway where a thing can plausibly
    be left or a person fall (away from the frame edges and the lamp post and tripod)."""
    width = frames[0].shape[1]
    H = frames[0].shape[0]
    spots = []
    for i in range(0, len(frames), 4):
        for x, y, w, h in _person_blobs(_foreground(frames[i], background), width):
            fx, fy = x + w / 2, y + h
            if margin < fx < width - margin and margin < fy < H - 10 and not _behind_occluder((x, y, w, h), width):
                spots.append((float(fx), float(fy)))
    if not spots:
        raise EdgeVadError("no walker found in these frames to tell where the walkway is")
    picks = rng.choice(len(spots), size=min(n, len(spots)), replace=False)
    return [spots[int(i)] for i in picks]


def lying_pose(sprite: Sprite, scale: float, angle_deg: float) -> Sprite:
    """The cut-out scaled for its depth and turned about its feet by ``angle_deg`` (90: lying along the
    ground, head towards +x): a person falling over."""
    h, w = sprite.alpha.shape
    ax, ay = sprite.anchor
    size = int(math.ceil(max(h, w) * scale * 2.2)) + 4
    centre = size / 2
    # Rotate about the feet, then move the feet to the centre of a canvas large enough for any angle.
    m = cv2.getRotationMatrix2D((ax, ay), -angle_deg, scale)
    m[0, 2] += centre - ax
    m[1, 2] += centre - ay
    flags = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    premul = cv2.warpAffine(sprite.premul, m, (size, size), flags=flags, borderValue=0)
    alpha = cv2.warpAffine(sprite.alpha, m, (size, size), flags=flags, borderValue=0)
    return Sprite(premul, alpha, (centre, centre))
