"""A reproducible anomaly test set: synthetic anomalies injected into real footage.

The source is ``vtest.avi`` (OpenCV's sample: pedestrians on a plaza seen from
above at an angle, 768x576, 10 fps). Frames 0-479 train the models, so the test
set is built from frames 480-794 only. Into those frames we draw the kinds of
events that the public benchmarks (UCSD Ped, CUHK Avenue, ShanghaiTech) label as
anomalous: a vehicle, a cyclist, a thrown object, a runner and an object racing
across the view.

Plausibility matters more than variety: a detector should have to notice an
object's appearance or motion, not a frame that suddenly looks synthetic. So
objects are sized by a perspective model measured on the footage itself, drawn
supersampled with soft edges, tone-matched to the hazy camera, motion-blurred
along their path, cast a soft shadow and pass behind the lamp post and tripod.

Everything is deterministic for a given seed (numpy ``Generator``); no torch.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from edge_vad.data.frames import read_frames, video_info
from edge_vad.data.labels import save_labels
from edge_vad.errors import EdgeVadError

TRAIN_FRAMES = 480  # frames 0-479 of vtest.avi are the training split
DEFAULT_STOP = 795
VIDEO_NAME = "vtest_anomalies.avi"
DEMO_MAX_BYTES = 5_000_000

KINDS = ("vehicle", "bike", "thrown_object", "running", "fast_crossing")

# Geometry of vtest.avi at its native 768x576, measured on frames 480-794:
# median height of walker blobs (frame difference against the median frame)
# against the image row of their feet, fitted with a line. Walkers are ~59 px
# tall near the back of the plaza (y=175) and ~150 px at the bottom edge.
NATIVE_WIDTH = 768
PERSON_HEIGHT_PER_ROW = 0.228
PERSON_HEIGHT_AT_ROW_0 = 19.8
PERSON_METRES = 1.75
# Walkers move a median 0.05 (IQR 0.03-0.07) body heights per frame; 0.06 is
# "walking speed" for the speed ratios below.
WALK_SPEED = 0.06

# Things in the scene that stand in front of anything whose feet are further
# back (higher in the image) than their own base: (ground row, polygons).
OCCLUDERS = (
    (392, [[(426, 30), (438, 30), (438, 393), (426, 393)],  # lamp post
           [(398, 18), (438, 18), (438, 40), (398, 40)],  # lamp head
           [(412, 201), (446, 201), (446, 244), (412, 244)]]),  # sign
    (478, [[(503, 336), (511, 336), (511, 352), (503, 352)],  # tripod head
           [(505, 350), (508, 350), (462, 471), (458, 470)],  # tripod legs
           [(505, 350), (509, 350), (509, 452), (505, 452)],
           [(506, 350), (510, 350), (527, 480), (523, 480)]]),
)

FIRST_NORMAL_FRAMES = 15
MIN_GAP = 12
MIN_EVENT, MAX_EVENT = 10, 40
MAX_ANOMALOUS_FRACTION = 0.45
# Objects less visible than this (cut by the frame edge) are not drawn at all,
# so that a label of 1 always means "an anomaly can be seen".
MIN_VISIBLE = 0.15
# Share of the frame interval the shutter is open; sets motion-blur length.
EXPOSURE = 0.2
SUPERSAMPLE = 4
GRAVITY = 9.81
# The camera looks down at roughly 20 degrees: the roof of the parked van in
# the back shows about 0.3 times as deep as the van is high.
TOP_FACE_RATIO = 0.3

# Each kind: band of foot rows (native pixels) its path may use and its speed
# in person heights per frame (a multiple of WALK_SPEED).
KIND_BANDS = {
    "vehicle": (225, 300),
    "bike": (380, 470),
    "thrown_object": (270, 450),
    "running": (300, 440),
    "fast_crossing": (215, 300),
}
KIND_SPEEDS = {
    "vehicle": (0.45, 0.60),  # 8-10x walking, ~30 km/h
    "bike": (0.18, 0.24),  # 3-4x walking
    "running": (0.24, 0.30),  # 4-5x walking
    "fast_crossing": (0.85, 1.1),  # 15-18x walking: across the view in about ten frames
}
THROW_FRAMES = (14, 19)

PALETTE_CAR = [(190, 190, 195), (40, 40, 160), (110, 60, 35), (230, 230, 230), (45, 45, 50), (50, 85, 50)]
# Muted, like what the walkers in the footage wear (BGR).
PALETTE_JACKETS = [(38, 38, 42), (55, 60, 70), (40, 40, 120), (60, 75, 55), (105, 105, 110), (90, 70, 45)]
PALETTE_TROUSERS = [(120, 85, 55), (40, 40, 42), (75, 75, 80), (95, 70, 50)]
PALETTE_BALL = [(30, 30, 210), (20, 200, 230), (200, 120, 20), (235, 235, 235)]
SKIN = (120, 150, 195)


# --------------------------------------------------------------------------- geometry


def _scene_scale(frame_width: int) -> float:
    return frame_width / NATIVE_WIDTH


def person_height(row: float, frame_width: int = NATIVE_WIDTH) -> float:
    """Height in pixels of a walker whose feet are on image row ``row``."""
    s = _scene_scale(frame_width)
    return PERSON_HEIGHT_PER_ROW * row + PERSON_HEIGHT_AT_ROW_0 * s


def _px_per_m(row: float, frame_width: int) -> float:
    return person_height(row, frame_width) / PERSON_METRES


def _occluder_masks(shape: tuple[int, int]) -> list[tuple[float, np.ndarray]]:
    s = _scene_scale(shape[1])
    masks = []
    for ground, polys in OCCLUDERS:
        mask = np.zeros(shape, np.float32)
        pts = [np.round(np.array(p, np.float64) * s).astype(np.int32) for p in polys]
        cv2.fillPoly(mask, pts, 1.0)
        # The real edges are soft (optics, JPEG); a hard cut would look pasted.
        masks.append((ground * s, cv2.GaussianBlur(mask, (0, 0), 0.8)))
    return masks


# --------------------------------------------------------------------------- layers


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


class _Canvas:
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


def _flip(sprite: Sprite) -> Sprite:
    w = sprite.alpha.shape[1]
    return Sprite(sprite.premul[:, ::-1].copy(), sprite.alpha[:, ::-1].copy(), (w - sprite.anchor[0], sprite.anchor[1]))


def _match_camera(sprite: Sprite, rng: np.random.Generator) -> Sprite:
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


def _to_layer(sprite: Sprite, x: float, y: float, velocity: tuple[float, float], soften: float) -> Layer:
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


def _shadow_layer(x: float, y: float, half_w: float, half_h: float, strength: float) -> Layer:
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


def _visible_fraction(layer: Layer, shape: tuple[int, int]) -> float:
    total = float(layer.alpha.sum())
    sl = _clip(layer, shape)
    if total <= 0 or sl is None:
        return 0.0
    return float(layer.alpha[sl[1]].sum()) / total


def _occlude(layer: Layer, ground_row: float, occluders) -> None:
    for base, mask in occluders:
        if ground_row < base:  # further away than the occluder: hidden behind it
            _hide(layer, mask)


def _darken(frame: np.ndarray, layer: Layer) -> None:
    sl = _clip(layer, frame.shape[:2])
    if sl is not None:
        frame[sl[0]] *= 1.0 - layer.alpha[sl[1]][..., None]


def _over(frame: np.ndarray, layer: Layer) -> None:
    sl = _clip(layer, frame.shape[:2])
    if sl is not None:
        a = layer.alpha[sl[1]][..., None]
        frame[sl[0]] = frame[sl[0]] * (1.0 - a) + layer.premul[sl[1]]


# --------------------------------------------------------------------------- sprites


def _draw_wheel(c: _Canvas, x: float, r: float, hub) -> None:
    c.circle(x, r, r, (25, 25, 28))
    c.circle(x, r, r * 0.55, hub)
    c.circle(x, r, r * 0.2, (70, 70, 75))


def _punch(c: _Canvas, x: float, z: float, r: float) -> None:
    """Make a disc transparent again: the gap inside a bicycle wheel."""
    cx, cy = c.px(x, z)
    mask = np.zeros(c.alpha.shape, np.uint8)
    cv2.circle(mask, (int(cx), int(cy)), max(1, int(r * c.k)), 1, -1)
    c.alpha[mask > 0] = 0.0
    c.premul[mask > 0] = 0.0


def _vehicle_sprite(px_per_m: float, params: dict) -> Sprite:
    """A car or van from the side, its top surfaces showing as the camera looks down."""
    body = params["color"]
    if params["object"] == "van":
        length, profile = 4.9, [(0.0, 0.3), (0.0, 1.95), (3.6, 1.98), (4.2, 1.3), (4.85, 1.05), (4.9, 0.3)]
        windows = [[(3.0, 1.25), (3.0, 1.85), (3.55, 1.88), (4.05, 1.3)]]
        tops = [(0.0, 3.6, body), (3.6, 4.2, (70, 65, 60)), (4.2, 4.85, body)]
        wheels = (0.95, 3.9)
    else:
        length = 4.4
        profile = [(0.0, 0.3), (0.0, 0.92), (0.25, 1.0), (0.85, 1.0), (1.35, 1.42),
                   (2.7, 1.45), (3.3, 1.0), (4.3, 0.86), (4.4, 0.6), (4.35, 0.3)]
        windows = [[(1.05, 1.03), (1.4, 1.36), (1.95, 1.37), (1.95, 1.03)],
                   [(2.05, 1.03), (2.05, 1.37), (2.65, 1.38), (3.1, 1.03)]]
        tops = [(0.25, 0.85, body), (0.85, 1.35, (70, 65, 60)), (1.35, 2.7, body),
                (2.7, 3.3, (80, 75, 70)), (3.3, 4.3, body)]
        wheels = (0.85, 3.5)
    depth = 1.8 * TOP_FACE_RATIO
    c = _Canvas((-0.1, length + 0.1), (-0.05, 2.05 + depth), px_per_m)
    # Top surfaces face the bright overcast sky.
    lighter = tuple(min(255.0, v * 1.25 + 35) for v in body)
    edges = dict(zip([p[0] for p in profile], [p[1] for p in profile]))
    for x0, x1, color in tops:
        z0, z1 = edges[x0], edges[x1]
        top_color = lighter if color is body else color
        c.poly([(x0, z0), (x1, z1), (x1, z1 + depth), (x0, z0 + depth)], top_color)
    c.poly(profile, body)
    for w in windows:
        c.poly(w, (70, 62, 55))
        # Sky reflected in the upper part of the glass.
        c.poly([w[0], w[1], ((w[1][0] + w[2][0]) / 2, (w[1][1] + w[2][1]) / 2), w[0]], (120, 112, 105))
    shade = tuple(v * 0.7 for v in body)
    belt = min(w[0][1] for w in windows) - 0.04
    c.line((0.1, 0.62), (length - 0.1, 0.62), 0.03, shade)  # crease
    c.line((0.15, belt), (length - 0.4, belt), 0.04, lighter)  # sky reflected along the shoulder
    c.poly([(0.02, 0.3), (length - 0.04, 0.3), (length - 0.04, 0.45), (0.02, 0.45)], tuple(v * 0.45 for v in body))
    for xd in (1.0, 2.0, 3.15) if length < 4.5 else (2.9, 1.6):
        c.line((xd, 0.45), (xd, belt), 0.015, shade)  # door gaps
        c.line((xd - 0.28, belt - 0.12), (xd - 0.12, belt - 0.12), 0.035, shade)  # handles
    c.poly([(length - 0.02, 0.62), (length - 0.2, 0.62), (length - 0.2, 0.75), (length - 0.04, 0.75)], (190, 230, 245))
    c.poly([(0.0, 0.7), (0.12, 0.7), (0.12, 0.85), (0.0, 0.85)], (30, 30, 170))
    c.shade()
    for x in wheels:
        c.circle(x, 0.33, 0.40, tuple(v * 0.35 for v in body))  # wheel arch
        _draw_wheel(c, x, 0.33, (150, 150, 155))
    return c.sprite((length / 2, 0.0))


def _two_link(root, end, l1: float, l2: float, bend: float = 1.0):
    """Middle joint (knee, elbow) of a two-segment limb; ``bend`` +1 bends it forward."""
    dx, dz = end[0] - root[0], end[1] - root[1]
    d = max(min(math.hypot(dx, dz), l1 + l2 - 1e-3), 1e-6)
    along = (l1 * l1 - l2 * l2 + d * d) / (2 * d)
    out = math.sqrt(max(l1 * l1 - along * along, 0.0))
    ux, uz = dx / d, dz / d
    return root[0] + along * ux - bend * out * uz, root[1] + along * uz + bend * out * ux


def _rider(c: _Canvas, hip, shoulder, hands, feet, colors: dict, far: bool) -> None:
    """A person's limbs on one side; ``far`` limbs are drawn darker, behind the bike."""
    k = 0.7 if far else 1.0
    trousers = tuple(v * k for v in colors["trousers"])
    jacket = tuple(v * k for v in colors["jacket"])
    knee = _two_link(hip, feet, 0.46, 0.48)
    c.line(hip, knee, 0.18, trousers)
    c.line(knee, feet, 0.14, trousers)
    c.line((feet[0] - 0.03, feet[1]), (feet[0] + 0.13, feet[1]), 0.08, (25, 25, 25))
    elbow = _two_link(shoulder, hands, 0.3, 0.32, bend=-1.0)
    c.line(shoulder, elbow, 0.12, jacket)
    c.line(elbow, hands, 0.1, jacket)
    c.circle(hands[0], hands[1], 0.045, SKIN)


def _bike_sprite(px_per_m: float, params: dict, phase: float) -> Sprite:
    """A cyclist, pedals turning with ``phase`` (radians)."""
    c = _Canvas((-0.45, 1.5), (-0.05, 1.95), px_per_m)
    colors = params["colors"]
    r = 0.34
    bb, seat, bar = (0.42, 0.30), (0.30, 0.93), (0.92, 1.05)
    hip, shoulder, head = (0.32, 1.0), (0.66, 1.48), (0.78, 1.66)
    crank = 0.17
    p_near = (bb[0] + crank * math.cos(phase), bb[1] + crank * math.sin(phase))
    p_far = (bb[0] - crank * math.cos(phase), bb[1] - crank * math.sin(phase))
    _rider(c, hip, shoulder, (bar[0] - 0.02, bar[1]), p_far, colors, far=True)
    for x in (0.0, 1.05):
        c.circle(x, r, r, (30, 30, 32))
        _punch(c, x, r, r - 0.035)
        for i in range(4):
            ang = i * math.pi / 4 + phase * 0.5
            c.line((x - r * math.cos(ang), r - r * math.sin(ang)), (x + r * math.cos(ang), r + r * math.sin(ang)),
                   0.01, (140, 140, 145))
    frame = colors["frame"]
    head_tube = (0.88, 0.65)
    for a, b in [((0.0, r), bb), ((0.0, r), seat), (bb, seat), (bb, head_tube), (seat, (0.9, 0.9)),
                 (head_tube, (1.05, r)), (head_tube, bar)]:
        c.line(a, b, 0.035, frame)
    c.line((0.22, 0.95), (0.4, 0.96), 0.05, (20, 20, 20))  # saddle
    c.line(bb, p_near, 0.03, (60, 60, 60))
    c.poly([(hip[0] - 0.16, hip[1] - 0.04), (hip[0] + 0.12, hip[1] - 0.1), (shoulder[0] + 0.14, shoulder[1] - 0.06),
            (shoulder[0] + 0.02, shoulder[1] + 0.1), (shoulder[0] - 0.14, shoulder[1] + 0.04)], colors["jacket"])
    c.line((shoulder[0] + 0.02, shoulder[1] + 0.04), (head[0] - 0.02, head[1] - 0.08), 0.08, SKIN)  # neck
    c.circle(head[0], head[1], 0.11, SKIN)
    c.poly([(head[0] - 0.12, head[1]), (head[0] - 0.08, head[1] + 0.1), (head[0] + 0.06, head[1] + 0.12),
            (head[0] + 0.11, head[1] + 0.03), (head[0] - 0.02, head[1] + 0.02)], colors["hair"])
    _rider(c, hip, shoulder, bar, p_near, colors, far=False)
    c.shade(1.08, 0.85)
    return c.sprite((0.52, 0.0))


def _motorbike_sprite(px_per_m: float, params: dict, phase: float) -> Sprite:
    """A crouched rider on a motorbike: the fast crossing."""
    colors = params["colors"]
    c = _Canvas((-0.4, 1.8), (-0.05, 1.7), px_per_m)
    hip, shoulder, helmet = (0.5, 0.95), (0.95, 1.32), (1.1, 1.45)
    _rider(c, hip, shoulder, (1.18, 1.05), (0.62, 0.45), colors, far=True)
    for x in (0.0, 1.4):
        _draw_wheel(c, x, 0.31, (120, 120, 125))
    body = colors["frame"]
    c.poly([(0.05, 0.55), (0.3, 0.42), (1.05, 0.4), (1.3, 0.75), (1.1, 0.95), (0.7, 0.98), (0.3, 0.85)], body)
    c.poly([(0.25, 0.86), (0.65, 0.98), (0.55, 1.02), (0.15, 0.92)], (25, 25, 25))  # seat
    c.line((-0.05, 0.45), (0.45, 0.38), 0.07, (170, 170, 175))  # exhaust
    c.line((1.3, 0.75), (1.4, 0.31), 0.05, (90, 90, 95))  # fork
    c.poly([(hip[0] - 0.12, hip[1]), (hip[0] + 0.12, hip[1] - 0.08), (shoulder[0] + 0.1, shoulder[1] - 0.05),
            (shoulder[0] - 0.05, shoulder[1] + 0.08)], colors["jacket"])
    c.circle(helmet[0], helmet[1], 0.15, colors["hair"])
    c.poly([(helmet[0] + 0.02, helmet[1] - 0.02), (helmet[0] + 0.15, helmet[1] - 0.02),
            (helmet[0] + 0.13, helmet[1] + 0.06), (helmet[0] + 0.04, helmet[1] + 0.06)], (50, 45, 40))  # visor
    _rider(c, hip, shoulder, (1.2, 1.05), (0.6, 0.45), colors, far=False)
    c.shade(1.1, 0.85)
    return c.sprite((0.7, 0.0))


def _thrown_sprite(px_per_m: float, params: dict, phase: float) -> Sprite:
    """A ball (shaded sphere) or a bag tumbling with ``phase``; anchored at its centre."""
    size = params["size_m"]
    c = _Canvas((-size, size), (-size, size), px_per_m)
    color = params["color"]
    if params["object"] == "ball":
        c.circle(0.0, 0.0, size / 2, color)
        h, w = c.alpha.shape
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        # Lit from above-left: a highlight and a darker lower-right side.
        cx, cy = c.px(-size * 0.15, size * 0.15)
        d = np.hypot(xx - cx, yy - cy) / (size * c.k)
        gain = np.clip(1.3 - 0.9 * d, 0.55, 1.3)
        c.premul *= gain[..., None]
    else:
        half_w, half_h = size / 2, size * 0.35
        cos, sin = math.cos(phase), math.sin(phase)

        def rot(x, z):
            return x * cos - z * sin, x * sin + z * cos

        c.poly([rot(-half_w, -half_h), rot(half_w, -half_h), rot(half_w * 0.8, half_h), rot(-half_w * 0.8, half_h)],
               color)
        handle = [(-0.25, 0.0), (-0.12, 0.25), (0.12, 0.25), (0.25, 0.0)]
        for (x0, z0), (x1, z1) in zip(handle, handle[1:]):
            c.line(rot(x0 * size, half_h + z0 * size), rot(x1 * size, half_h + z1 * size), 0.025,
                   tuple(v * 0.6 for v in color))
        c.shade(1.15, 0.8)
    return c.sprite((0.0, 0.0))


# --------------------------------------------------------------------------- the runner


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


def _find_walker(frames: list[np.ndarray], background: np.ndarray, rng: np.random.Generator):
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
    s = _scene_scale(width)
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


def _cutout(frame: np.ndarray, background: np.ndarray, box) -> Sprite:
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


def _runner_pose(sprite: Sprite, scale: float, lean: float) -> Sprite:
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


# --------------------------------------------------------------------------- planning


@dataclass
class _Plan:
    kind: str
    duration: int
    params: dict
    start: int = 0


def _crossing_path(kind: str, rng: np.random.Generator, width: int, half_len_m: float) -> dict:
    """Edge-to-edge path across the view at a speed typical of ``kind``."""
    s = _scene_scale(width)
    lo, hi = KIND_BANDS[kind]
    y_from, y_to = (float(v) * s for v in rng.uniform(lo, hi, size=2))
    direction = int(rng.choice([-1, 1]))
    speed = float(rng.uniform(*KIND_SPEEDS[kind]))
    y_mid = (y_from + y_to) / 2
    margin = half_len_m * _px_per_m(max(y_from, y_to), width)
    length = math.hypot(width + 2 * margin, y_to - y_from)
    frames = math.ceil(length / (speed * person_height(y_mid, width)))
    if frames > MAX_EVENT:  # too far back to cross in time: ride a little faster
        speed *= frames / MAX_EVENT
        frames = MAX_EVENT
    x_from, x_to = (-margin, width + margin) if direction > 0 else (width + margin, -margin)
    return {
        "direction": "left_to_right" if direction > 0 else "right_to_left",
        "foot_from": [round(x_from, 1), round(y_from, 1)],
        "foot_to": [round(x_to, 1), round(y_to, 1)],
        "speed_heights_per_frame": round(speed, 3),
        "speed_x_walking": round(speed / WALK_SPEED, 1),
        "frames": max(frames, MIN_EVENT),
    }


def _pick(rng: np.random.Generator, palette):
    return [int(v) for v in palette[int(rng.integers(len(palette)))]]


def _person_colors(rng: np.random.Generator) -> dict:
    return {"jacket": _pick(rng, PALETTE_JACKETS), "trousers": _pick(rng, PALETTE_TROUSERS),
            "hair": _pick(rng, [(20, 20, 25), (30, 50, 80), (60, 60, 65)]),
            "frame": _pick(rng, PALETTE_CAR)}


def _plan_kind(kind: str, rng: np.random.Generator, width: int) -> _Plan:
    if kind == "vehicle":
        params = {"object": "van" if rng.random() < 0.3 else "car", "color": _pick(rng, PALETTE_CAR)}
        params.update(_crossing_path(kind, rng, width, half_len_m=2.5))
    elif kind == "bike":
        params = {"object": "bicycle", "colors": _person_colors(rng)}
        params.update(_crossing_path(kind, rng, width, half_len_m=1.0))
    elif kind == "fast_crossing":
        params = {"object": "motorbike", "colors": _person_colors(rng)}
        params.update(_crossing_path(kind, rng, width, half_len_m=1.2))
    elif kind == "running":
        params = {"object": "pedestrian cut-out"}
        params.update(_crossing_path(kind, rng, width, half_len_m=0.4))
    elif kind == "thrown_object":
        params = _throw_path(rng, width)
    else:  # pragma: no cover - KINDS is closed
        raise ValueError(kind)
    return _Plan(kind, int(params.pop("frames")), params)


def _throw_path(rng: np.random.Generator, width: int) -> dict:
    """A throw from beyond one edge that leaves by the other, under real gravity."""
    s = _scene_scale(width)
    lo, hi = KIND_BANDS["thrown_object"]
    y_from, y_to = (float(v) * s for v in rng.uniform(lo, hi, size=2))
    direction = 1 if rng.random() < 0.5 else -1
    frames = int(rng.integers(THROW_FRAMES[0], THROW_FRAMES[1] + 1))
    obj = str(rng.choice(["ball", "bag"]))
    return {
        "object": obj,
        "size_m": 0.32 if obj == "ball" else 0.5,
        "color": _pick(rng, PALETTE_BALL),
        "direction": "left_to_right" if direction > 0 else "right_to_left",
        "ground_from": [0.0 if direction > 0 else float(width), round(y_from, 1)],
        "ground_to": [float(width) if direction > 0 else 0.0, round(y_to, 1)],
        "height_from_m": round(float(rng.uniform(1.4, 1.9)), 2),
        "height_to_m": round(float(rng.uniform(0.4, 1.2)), 2),
        "frames": frames,
    }


def _schedule(rng: np.random.Generator, n_frames: int, width: int) -> list[_Plan]:
    """Every kind once plus a short extra, shuffled, with random normal gaps.

    Events are dropped from the end when the clip is too short for them, so the
    first FIRST_NORMAL_FRAMES stay normal and the anomalous share stays below
    MAX_ANOMALOUS_FRACTION.
    """
    kinds = list(KINDS) + [str(rng.choice(["thrown_object", "fast_crossing"]))]
    plans = [_plan_kind(kinds[i], rng, width) for i in rng.permutation(len(kinds))]
    while plans:
        busy = sum(p.duration for p in plans)
        slack = n_frames - FIRST_NORMAL_FRAMES - busy - MIN_GAP * len(plans)
        if slack >= 0 and busy <= MAX_ANOMALOUS_FRACTION * n_frames:
            break
        plans.pop()
    if not plans:
        raise EdgeVadError(f"{n_frames} frames are too few to hold an injected anomaly")
    # Random split of the spare frames among the gap before each event and the tail.
    shares = rng.dirichlet(np.ones(len(plans) + 1)) * slack
    gaps = np.floor(shares).astype(int)
    t = FIRST_NORMAL_FRAMES
    for plan, gap in zip(plans, gaps):
        t += MIN_GAP + int(gap) if plan is not plans[0] else int(gap)
        plan.start = t
        t += plan.duration
    return plans


# --------------------------------------------------------------------------- rendering


def _lerp(a, b, t: float):
    return a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t


def _crossing_states(plan: _Plan):
    """Foot position and velocity (px/frame) for each frame of a crossing."""
    p = plan.params
    n = plan.duration
    for k in range(n):
        x, y = _lerp(p["foot_from"], p["foot_to"], k / max(n - 1, 1))
        vx = (p["foot_to"][0] - p["foot_from"][0]) / max(n - 1, 1)
        vy = (p["foot_to"][1] - p["foot_from"][1]) / max(n - 1, 1)
        yield k, x, y, (vx, vy)


def _drawn_renderer(draw: Callable, plan: _Plan, rng, width: int, shadow: tuple[float, float, float]):
    """Frames of a drawn object travelling along its path, with a ground shadow."""
    half_w_m, half_h_m, strength = shadow
    flip = plan.params["direction"] == "right_to_left"
    for k, x, y, v in _crossing_states(plan):
        ppm = _px_per_m(y, width)
        sprite = _match_camera(draw(ppm, plan.params, k), rng)
        if flip:
            sprite = _flip(sprite)
        obj = _to_layer(sprite, x, y, v, soften=0.6)
        # The shadow sits under the middle of the footprint, half its depth back.
        shade = _shadow_layer(x, y - half_h_m * ppm, half_w_m * ppm, half_h_m * ppm, strength)
        yield k, y, obj, shade


def _vehicle_frames(plan, rng, frames, background, width):
    def draw(ppm, params, k):
        return _vehicle_sprite(ppm, params)

    length = 4.9 if plan.params["object"] == "van" else 4.4
    yield from _drawn_renderer(draw, plan, rng, width, (length * 0.55, 1.8 * TOP_FACE_RATIO * 0.55, 0.55))


def _bike_frames(plan, rng, frames, background, width):
    # One pedal turn moves a bicycle about 5 m.
    def draw(ppm, params, k):
        metres = k * plan.params["speed_heights_per_frame"] * PERSON_METRES
        return _bike_sprite(ppm, params, phase=2 * math.pi * metres / 5.0)

    yield from _drawn_renderer(draw, plan, rng, width, (0.9, 0.2, 0.35))


def _fast_frames(plan, rng, frames, background, width):
    def draw(ppm, params, k):
        return _motorbike_sprite(ppm, params, phase=0.0)  # wheels spin too fast to see anyway

    yield from _drawn_renderer(draw, plan, rng, width, (1.0, 0.22, 0.4))


def _thrown_frames(plan, rng, frames, background, width):
    p = plan.params
    n = plan.duration
    flight = n / 10.0  # seconds, at the source's 10 fps
    z0, z1 = p["height_from_m"], p["height_to_m"]
    vz = (z1 - z0 + GRAVITY * flight * flight / 2) / flight
    p["apex_m"] = round(z0 + vz * vz / (2 * GRAVITY), 2)
    for k in range(n):
        t_s = k / 10.0
        gx, gy = _lerp(p["ground_from"], p["ground_to"], k / max(n - 1, 1))
        z = z0 + vz * t_s - GRAVITY * t_s * t_s / 2
        vz_now = vz - GRAVITY * t_s
        ppm = _px_per_m(gy, width)
        vx = (p["ground_to"][0] - p["ground_from"][0]) / max(n - 1, 1)
        sprite = _match_camera(_thrown_sprite(ppm, p, phase=k * 0.9), rng)
        obj = _to_layer(sprite, gx, gy - z * ppm, (vx, -vz_now * ppm / 10.0), soften=0.5)
        # The higher the object, the fainter and wider its shadow.
        fade = 1.0 / (1.0 + 0.5 * z)
        r = p["size_m"] * ppm * (0.5 + 0.1 * z)
        shade = _shadow_layer(gx, gy, r, r * 0.35, 0.35 * fade)
        yield k, gy, obj, shade


def _running_frames(plan, rng, frames, background, width):
    index, box, facing = _find_walker(frames, background, rng)
    source = _cutout(frames[index], background, box)
    src_row = box[1] + box[3]
    plan.params.update({"source_frame": index, "source_box": list(box)})
    heading = 1 if plan.params["direction"] == "left_to_right" else -1
    if facing != heading:
        source = _flip(source)
    for k, x, y, v in _crossing_states(plan):
        scale = person_height(y, width) / person_height(src_row, width)
        posed = _runner_pose(source, scale, lean=0.12 * heading)
        # Running bobs the body up at each stride (about 3 strides a second).
        bob = 0.03 * person_height(y, width) * abs(math.sin(k * math.pi * 0.3))
        obj = _to_layer(posed, x, y - bob, v, soften=0.0)
        ppm = _px_per_m(y, width)
        shade = _shadow_layer(x, y - 0.05 * ppm, 0.3 * ppm, 0.08 * ppm, 0.25)
        yield k, y, obj, shade


RENDERERS = {
    "vehicle": _vehicle_frames,
    "bike": _bike_frames,
    "thrown_object": _thrown_frames,
    "running": _running_frames,
    "fast_crossing": _fast_frames,
}


def _walkers_in_front(frame: np.ndarray, background: np.ndarray, ground_row: float) -> np.ndarray | None:
    """Soft mask of real people nearer the camera than the object (feet lower in the image)."""
    n, blobs, stats, _ = cv2.connectedComponentsWithStats(_foreground(frame, background))
    bottoms = stats[:, cv2.CC_STAT_TOP] + stats[:, cv2.CC_STAT_HEIGHT]
    front = (bottoms > ground_row + 2) & (stats[:, cv2.CC_STAT_AREA] > 60)
    front[0] = False
    if not front.any():
        return None
    mask = front[blobs].astype(np.float32)
    return cv2.GaussianBlur(cv2.dilate(mask, np.ones((3, 3), np.uint8)), (0, 0), 0.8)


def _hide(layer: Layer, mask: np.ndarray) -> None:
    sl = _clip(layer, mask.shape)
    if sl is not None:
        keep = 1.0 - mask[sl[0]]
        layer.alpha[sl[1]] *= keep
        layer.premul[sl[1]] *= keep[..., None]


def _render(plan: _Plan, frames: list[np.ndarray], background: np.ndarray, out: list[np.ndarray],
            labels: np.ndarray, rng, occluders) -> dict:
    shape = frames[0].shape[:2]
    shown = []
    for k, ground_row, obj, shade in RENDERERS[plan.kind](plan, rng, frames, background, shape[1]):
        t = plan.start + k
        if t >= len(frames) or _visible_fraction(obj, shape) < MIN_VISIBLE:
            continue
        _occlude(obj, ground_row, occluders)
        _occlude(shade, ground_row, occluders)
        in_front = _walkers_in_front(frames[t], background, ground_row)
        if in_front is not None:
            _hide(obj, in_front)
            _hide(shade, in_front)
        canvas = frames[t].astype(np.float32)
        _darken(canvas, shade)
        _over(canvas, obj)
        out[t] = np.clip(np.round(canvas), 0, 255).astype(np.uint8)
        labels[t] = 1
        shown.append(t)
    if not shown:
        return {}
    return {"kind": plan.kind, "first_frame": shown[0], "last_frame": shown[-1], "params": plan.params}


def inject_anomalies(frames: list[np.ndarray], seed: int = 0) -> tuple[list[np.ndarray], np.ndarray, list[dict]]:
    """Draw a seeded schedule of anomalies into ``frames``.

    Returns the frames (untouched ones are the same arrays as given, changed ones
    new arrays), int8 labels (1 where an injected anomaly is visible) and one
    description per event: kind, first_frame, last_frame (indices into
    ``frames``) and the parameters it was drawn with.
    """
    if not frames:
        raise EdgeVadError("no frames to inject anomalies into")
    rng = np.random.default_rng(seed)
    width = frames[0].shape[1]
    plans = _schedule(rng, len(frames), width)
    occluders = _occluder_masks(frames[0].shape[:2])
    background = median_background(frames)
    out = list(frames)
    labels = np.zeros(len(frames), np.int8)
    events = []
    for plan in plans:
        # Each event draws from its own stream, so one event's noise does not
        # shift the next event's parameters.
        event = _render(plan, frames, background, out, labels, np.random.default_rng([seed, plan.start]), occluders)
        if event:
            events.append(event)
    return out, labels, events


# --------------------------------------------------------------------------- files


def _check_range(video: Path, start: int, stop: int, validation: bool = False) -> int:
    if validation:
        # A validation set is for choosing designs (score aggregation, presets)
        # without looking at the test frames, so it must stay inside the training range.
        if stop > TRAIN_FRAMES:
            raise EdgeVadError(
                f"stop={stop}: a validation set is cut from the training range 0-{TRAIN_FRAMES - 1}; "
                f"frames {TRAIN_FRAMES}+ of {video} are for the test set only")
    elif start < TRAIN_FRAMES:
        raise EdgeVadError(
            f"start={start}: frames 0-{TRAIN_FRAMES - 1} of {video} are reserved for training; "
            f"the test set must start at frame {TRAIN_FRAMES} or later")
    total = video_info(video).frames
    if not start < stop <= total:
        raise EdgeVadError(f"{video}: frame range [{start}, {stop}) is empty or beyond its {total} frames")
    return total


def _injected(video: str | Path, start: int, stop: int, seed: int, validation: bool = False):
    video = Path(video)
    _check_range(video, start, stop, validation)
    frames = list(read_frames(video, start, stop))
    if len(frames) != stop - start:
        raise EdgeVadError(f"{video}: decoded {len(frames)} frames in [{start}, {stop}), expected {stop - start}")
    return inject_anomalies(frames, seed=seed)


def _write_video(path: Path, frames: list[np.ndarray], fps: float, scale: float, codec: str,
                 quality: int | None = None) -> None:
    if scale <= 0:
        raise EdgeVadError(f"scale={scale}: must be positive")
    h, w = frames[0].shape[:2]
    size = (max(2, round(w * scale)), max(2, round(h * scale)))
    fourcc = cv2.VideoWriter_fourcc(*codec)
    if quality is None:
        writer = cv2.VideoWriter(str(path), fourcc, fps, size)
    else:
        # Only OpenCV's own MJPEG encoder honours VIDEOWRITER_PROP_QUALITY; the
        # FFmpeg one that VideoWriter picks by default ignores it.
        writer = cv2.VideoWriter(str(path), cv2.CAP_OPENCV_MJPEG, fourcc, fps, size)
    if not writer.isOpened():
        raise EdgeVadError(f"{path}: OpenCV cannot write a video with codec {codec!r}")
    try:
        if quality is not None:
            writer.set(cv2.VIDEOWRITER_PROP_QUALITY, quality)
        for frame in frames:
            if size != (w, h):
                frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
            writer.write(frame)
    finally:
        writer.release()


def make_testset(video: str | Path, out_dir: str | Path, start: int = TRAIN_FRAMES, stop: int = DEFAULT_STOP,
                 seed: int = 0, scale: float = 1.0, codec: str = "MJPG", validation: bool = False) -> dict:
    """Write ``vtest_anomalies.avi``, ``labels.npy`` and ``events.json`` to ``out_dir``.

    ``validation=True`` cuts the set from the training range instead (use
    another seed): design choices are made on it, never on the test set.
    """
    frames, labels, events = _injected(video, start, stop, seed, validation)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"video": out_dir / VIDEO_NAME, "labels": out_dir / "labels.npy", "events": out_dir / "events.json"}
    fps = video_info(video).fps
    _write_video(paths["video"], frames, fps, scale, codec)
    save_labels(paths["labels"], labels)
    meta = {"source": str(video), "start": start, "stop": stop, "seed": seed, "scale": scale, "fps": fps,
            "frames": len(frames), "anomalous_frames": int(labels.sum()), "events": events}
    paths["events"].write_text(json.dumps(meta, indent=2) + "\n")
    return paths


def _demo_encodings(scale: float):
    """(scale, quality) to try in turn, smallest loss of detail first.

    On vtest.avi the FFmpeg MJPEG writer gives ~8 MB at scale 0.5, and OpenCV's
    own encoder, the only one that lowers JPEG quality, still gives ~7 MB at
    quality 20 (it keeps full-resolution chroma, costly on the grass). So after
    two quality steps the frame is made smaller instead (at scale 0.5: 352, 320,
    288, 272, 256 pixels wide, sizes JPEG's 8x8 blocks tile well).
    """
    yield scale, None
    yield scale, 60
    yield scale, 40
    for factor in (11 / 12, 5 / 6, 3 / 4, 17 / 24, 2 / 3, 1 / 2):
        yield scale * factor, None


def make_demo_clip(video: str | Path, out_path: str | Path, seed: int = 0, scale: float = 0.5) -> dict:
    """A small MJPG clip of the test set (<= 5 MB) with ``<name>.labels.npy`` beside it.

    ``scale`` is where the search for a size that fits starts; the returned
    dict says which scale and JPEG quality (None: the encoder's default) made it.
    """
    frames, labels, events = _injected(video, TRAIN_FRAMES, DEFAULT_STOP, seed)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fps = video_info(video).fps
    for used_scale, quality in _demo_encodings(scale):
        _write_video(out_path, frames, fps, used_scale, "MJPG", quality=quality)
        if out_path.stat().st_size <= DEMO_MAX_BYTES:
            break
    labels_path = out_path.with_suffix(".labels.npy")
    save_labels(labels_path, labels)
    h, w = frames[0].shape[:2]
    return {"video": out_path, "labels": labels_path, "scale": used_scale, "quality": quality,
            "size": (round(w * used_scale), round(h * used_scale)), "bytes": out_path.stat().st_size,
            "events": events}
