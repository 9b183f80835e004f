"""Drawn objects (car, van, bicycle, motorbike, thrown ball or bag), sized in metres for their depth."""

from __future__ import annotations

import math

import cv2
import numpy as np

from edge_vad.data.testset.layers import Canvas, Sprite
from edge_vad.data.testset.scene import SKIN, TOP_FACE_RATIO


def _draw_wheel(c: Canvas, x: float, r: float, hub) -> None:
    c.circle(x, r, r, (25, 25, 28))
    c.circle(x, r, r * 0.55, hub)
    c.circle(x, r, r * 0.2, (70, 70, 75))


def _punch(c: Canvas, x: float, z: float, r: float) -> None:
    """Make a disc transparent again: the gap inside a bicycle wheel."""
    cx, cy = c.px(x, z)
    mask = np.zeros(c.alpha.shape, np.uint8)
    cv2.circle(mask, (int(cx), int(cy)), max(1, int(r * c.k)), 1, -1)
    c.alpha[mask > 0] = 0.0
    c.premul[mask > 0] = 0.0


def vehicle_sprite(px_per_m: float, params: dict) -> Sprite:
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
    c = Canvas((-0.1, length + 0.1), (-0.05, 2.05 + depth), px_per_m)
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


def _rider(c: Canvas, hip, shoulder, hands, feet, colors: dict, far: bool) -> None:
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


def bike_sprite(px_per_m: float, params: dict, phase: float) -> Sprite:
    """A cyclist, pedals turning with ``phase`` (radians)."""
    c = Canvas((-0.45, 1.5), (-0.05, 1.95), px_per_m)
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


def motorbike_sprite(px_per_m: float, params: dict, phase: float) -> Sprite:
    """A crouched rider on a motorbike: the fast crossing."""
    colors = params["colors"]
    c = Canvas((-0.4, 1.8), (-0.05, 1.7), px_per_m)
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


def thrown_sprite(px_per_m: float, params: dict, phase: float) -> Sprite:
    """A ball (shaded sphere) or a bag tumbling with ``phase``; anchored at its centre."""
    size = params["size_m"]
    c = Canvas((-size, size), (-size, size), px_per_m)
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


def bag_sprite(px_per_m: float, params: dict) -> Sprite:
    """A bag left standing on the ground: suitcase (upright, with handle), backpack or cardboard box."""
    color = params["color"]
    obj = params["object"]
    if obj == "suitcase":
        w, h = 0.45, 0.62
    elif obj == "backpack":
        w, h = 0.38, 0.48
    else:
        w, h = 0.5, 0.38
    depth = 0.3 * TOP_FACE_RATIO
    c = Canvas((-0.05, w + 0.05), (-0.02, h + depth + 0.15), px_per_m)
    lighter = tuple(min(255.0, v * 1.25 + 30) for v in color)
    c.poly([(0.0, h), (w, h), (w, h + depth), (0.0, h + depth)], lighter)  # top face, lit by the sky
    if obj == "backpack":
        c.poly([(0.02, 0.0), (w - 0.02, 0.0), (w, h * 0.8), (w * 0.5, h), (0.0, h * 0.8)], color)
        c.poly([(0.08, 0.06), (w - 0.08, 0.06), (w - 0.08, 0.22), (0.08, 0.22)], tuple(v * 0.75 for v in color))
    else:
        c.poly([(0.0, 0.0), (w, 0.0), (w, h), (0.0, h)], color)
        c.line((0.02, h * 0.5), (w - 0.02, h * 0.5), 0.015, tuple(v * 0.7 for v in color))  # seam
    if obj == "suitcase":
        c.line((w * 0.35, h + depth * 0.5), (w * 0.35, h + depth * 0.5 + 0.1), 0.02, (30, 30, 30))
        c.line((w * 0.65, h + depth * 0.5), (w * 0.65, h + depth * 0.5 + 0.1), 0.02, (30, 30, 30))
        c.line((w * 0.35, h + depth * 0.5 + 0.1), (w * 0.65, h + depth * 0.5 + 0.1), 0.025, (30, 30, 30))
    c.shade()
    return c.sprite((w / 2, 0.0))
