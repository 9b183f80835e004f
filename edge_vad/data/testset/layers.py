"""Drawing layers: premultiplied sprites placed, motion-blurred, shadowed, occluded and composited into a frame."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from edge_vad.data.testset.scene import EXPOSURE, SUPERSAMPLE


@dataclass
class Layer:
    """Premultiplied colour and alpha placed with its top-left at (x0, y0)."""

    premul: np.ndarray  # float32 HxWx3
    alpha: np.ndarray  # float32 HxW
    x0: int
    y0: int


@dataclass
class Sprite:
    premul: np.ndarray
    alpha: np.ndarray
    anchor: tuple[float, float]  # pixel that sits on the object's track point


class Canvas:
    """Draws in metres (x forward, z up) at SUPERSAMPLE times the target scale.

    The canvas starts black and transparent and every shape is drawn into colour
    and alpha alike, so colour stays premultiplied and downsampling it with
    INTER_AREA gives anti-aliased edges for free.
    """

    def __init__(self, x_range: tuple[float, float], z_range: tuple[float, float], px_per_m: float):
        self.k = px_per_m * SUPERSAMPLE
        self.x_min, self.z_max = x_range[0], z_range[1]
        w = int(math.ceil((x_range[1] - x_range[0]) * px_per_m)) + 2
        h = int(math.ceil((z_range[1] - z_range[0]) * px_per_m)) + 2
        self.premul = np.zeros((h * SUPERSAMPLE, w * SUPERSAMPLE, 3), np.float32)
        self.alpha = np.zeros((h * SUPERSAMPLE, w * SUPERSAMPLE), np.float32)

    def px(self, x: float, z: float) -> tuple[float, float]:
        return (x - self.x_min) * self.k, (self.z_max - z) * self.k

    def _fixed(self, pts) -> np.ndarray:
        # cv2 drawing takes fixed-point coordinates (shift=4) for sub-pixel shapes.
        return np.array([[round(c * 16) for c in self.px(x, z)] for x, z in pts], np.int32)

    def poly(self, pts, color) -> None:
        arr = self._fixed(pts)
        cv2.fillPoly(self.premul, [arr], tuple(float(c) for c in color), cv2.LINE_8, shift=4)
        cv2.fillPoly(self.alpha, [arr], 1.0, cv2.LINE_8, shift=4)

    def circle(self, x: float, z: float, r: float, color) -> None:
        cx, cy = self._fixed([(x, z)])[0]
        rad = max(1, round(r * self.k * 16))
        cv2.circle(self.premul, (int(cx), int(cy)), rad, tuple(float(c) for c in color), -1, cv2.LINE_8, shift=4)
        cv2.circle(self.alpha, (int(cx), int(cy)), rad, 1.0, -1, cv2.LINE_8, shift=4)

    def line(self, a, b, width: float, color) -> None:
        (ax, ay), (bx, by) = self._fixed([a, b])
        t = max(1, round(width * self.k))
        c = tuple(float(v) for v in color)
        cv2.line(self.premul, (int(ax), int(ay)), (int(bx), int(by)), c, t, cv2.LINE_8, shift=4)
        cv2.line(self.alpha, (int(ax), int(ay)), (int(bx), int(by)), 1.0, t, cv2.LINE_8, shift=4)
        # Round caps, so that limbs join smoothly at knees and elbows.
        for x, z in (a, b):
            self.circle(x, z, width / 2, color)

    def shade(self, top_gain: float = 1.12, bottom_gain: float = 0.8) -> None:
        """Light from the overcast sky: upper parts brighter than lower ones."""
        gains = np.linspace(top_gain, bottom_gain, self.premul.shape[0], dtype=np.float32)
        self.premul *= gains[:, None, None]

    def sprite(self, anchor_m: tuple[float, float]) -> Sprite:
        h, w = self.alpha.shape[0] // SUPERSAMPLE, self.alpha.shape[1] // SUPERSAMPLE
        premul = cv2.resize(self.premul, (w, h), interpolation=cv2.INTER_AREA)
        alpha = cv2.resize(self.alpha, (w, h), interpolation=cv2.INTER_AREA)
        ax, ay = self.px(*anchor_m)
        return Sprite(premul, alpha, (ax / SUPERSAMPLE, ay / SUPERSAMPLE))


def flip(sprite: Sprite) -> Sprite:
    w = sprite.alpha.shape[1]
    return Sprite(sprite.premul[:, ::-1].copy(), sprite.alpha[:, ::-1].copy(), (w - sprite.anchor[0], sprite.anchor[1]))


def match_camera(sprite: Sprite, rng: np.random.Generator) -> Sprite:
    """Give a drawn sprite the hazy, noisy, slightly soft look of the footage."""
    a = sprite.alpha
    # The camera lifts blacks and compresses whites (c' = 18 + 0.88 c), premultiplied.
    premul = 18.0 * a[..., None] + 0.88 * sprite.premul
    premul += rng.normal(0.0, 3.0, premul.shape).astype(np.float32) * a[..., None]
    return Sprite(premul.astype(np.float32), a, sprite.anchor)


def _motion_kernel(dx: float, dy: float) -> np.ndarray | None:
    length = math.hypot(dx, dy) * EXPOSURE
    if length < 1.5:
        return None
    size = int(math.ceil(length)) | 1
    k = np.zeros((size * 4, size * 4), np.float32)
    c = size * 2
    ux, uy = dx / math.hypot(dx, dy), dy / math.hypot(dx, dy)
    half = length * 2
    p0 = (round((c - ux * half) * 16), round((c - uy * half) * 16))
    p1 = (round((c + ux * half) * 16), round((c + uy * half) * 16))
    cv2.line(k, p0, p1, 1.0, 1, cv2.LINE_AA, shift=4)
    k = cv2.resize(k, (size, size), interpolation=cv2.INTER_AREA)
    return k / k.sum()


def to_layer(sprite: Sprite, x: float, y: float, velocity: tuple[float, float], soften: float) -> Layer:
    """Place a sprite's anchor at (x, y), blurred along ``velocity`` (px/frame)."""
    kernel = _motion_kernel(*velocity)
    pad = (kernel.shape[0] // 2 if kernel is not None else 0) + 3
    premul = cv2.copyMakeBorder(sprite.premul, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    alpha = cv2.copyMakeBorder(sprite.alpha, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    if kernel is not None:
        premul = cv2.filter2D(premul, -1, kernel, borderType=cv2.BORDER_CONSTANT)
        alpha = cv2.filter2D(alpha, -1, kernel, borderType=cv2.BORDER_CONSTANT)
    if soften > 0:
        premul = cv2.GaussianBlur(premul, (0, 0), soften)
        alpha = cv2.GaussianBlur(alpha, (0, 0), soften)
    x0 = int(round(x - sprite.anchor[0])) - pad
    y0 = int(round(y - sprite.anchor[1])) - pad
    return Layer(premul, np.clip(alpha, 0.0, 1.0), x0, y0)


def shadow_layer(x: float, y: float, half_w: float, half_h: float, strength: float) -> Layer:
    """A soft dark ellipse on the ground; only ``alpha`` is used (darkening)."""
    blur = max(1.0, half_h * 0.6)
    pad = int(3 * blur) + 2
    w, h = int(2 * (half_w + pad)), int(2 * (half_h + pad))
    alpha = np.zeros((h, w), np.float32)
    cv2.ellipse(alpha, (w // 2, h // 2), (max(1, round(half_w)), max(1, round(half_h))), 0, 0, 360, 1.0, -1)
    alpha = cv2.GaussianBlur(alpha, (0, 0), blur) * strength
    return Layer(np.zeros((h, w, 3), np.float32), alpha, int(round(x)) - w // 2, int(round(y)) - h // 2)


def _clip(layer: Layer, shape: tuple[int, int]):
    """Slices of frame and layer that overlap, or None when they do not."""
    h, w = layer.alpha.shape
    fx0, fy0 = max(layer.x0, 0), max(layer.y0, 0)
    fx1, fy1 = min(layer.x0 + w, shape[1]), min(layer.y0 + h, shape[0])
    if fx0 >= fx1 or fy0 >= fy1:
        return None
    frame_sl = (slice(fy0, fy1), slice(fx0, fx1))
    layer_sl = (slice(fy0 - layer.y0, fy1 - layer.y0), slice(fx0 - layer.x0, fx1 - layer.x0))
    return frame_sl, layer_sl


def visible_fraction(layer: Layer, shape: tuple[int, int]) -> float:
    total = float(layer.alpha.sum())
    sl = _clip(layer, shape)
    if total <= 0 or sl is None:
        return 0.0
    return float(layer.alpha[sl[1]].sum()) / total


def occlude(layer: Layer, ground_row: float, occluders) -> None:
    for base, mask in occluders:
        if ground_row < base:  # further away than the occluder: hidden behind it
            hide(layer, mask)


def darken(frame: np.ndarray, layer: Layer) -> None:
    sl = _clip(layer, frame.shape[:2])
    if sl is not None:
        frame[sl[0]] *= 1.0 - layer.alpha[sl[1]][..., None]


def over(frame: np.ndarray, layer: Layer) -> None:
    sl = _clip(layer, frame.shape[:2])
    if sl is not None:
        a = layer.alpha[sl[1]][..., None]
        frame[sl[0]] = frame[sl[0]] * (1.0 - a) + layer.premul[sl[1]]




def hide(layer: Layer, mask: np.ndarray) -> None:
    sl = _clip(layer, mask.shape)
    if sl is not None:
        keep = 1.0 - mask[sl[0]]
        layer.alpha[sl[1]] *= keep
        layer.premul[sl[1]] *= keep[..., None]
