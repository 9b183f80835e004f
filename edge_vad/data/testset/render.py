"""Rendering a planned event into the frames, and ``inject_anomalies``: the whole schedule."""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from edge_vad.data.testset.cutouts import (
    cutout,
    find_walker,
    median_background,
    runner_pose,
    walkers_in_front,
)
from edge_vad.data.testset.layers import (
    darken,
    flip,
    hide,
    match_camera,
    occlude,
    over,
    shadow_layer,
    to_layer,
    visible_fraction,
)
from edge_vad.data.testset.plan import Plan, schedule
from edge_vad.data.testset.scene import (
    GRAVITY,
    MIN_VISIBLE,
    PERSON_METRES,
    TOP_FACE_RATIO,
    occluder_masks,
    person_height,
    px_per_m,
)
from edge_vad.data.testset.sprites import (
    bike_sprite,
    motorbike_sprite,
    thrown_sprite,
    vehicle_sprite,
)
from edge_vad.errors import EdgeVadError


def _lerp(a, b, t: float):
    return a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t


def _crossing_states(plan: Plan):
    """Foot position and velocity (px/frame) for each frame of a crossing."""
    p = plan.params
    n = plan.duration
    for k in range(n):
        x, y = _lerp(p["foot_from"], p["foot_to"], k / max(n - 1, 1))
        vx = (p["foot_to"][0] - p["foot_from"][0]) / max(n - 1, 1)
        vy = (p["foot_to"][1] - p["foot_from"][1]) / max(n - 1, 1)
        yield k, x, y, (vx, vy)


def _drawn_renderer(draw: Callable, plan: Plan, rng, width: int, shadow: tuple[float, float, float]):
    """Frames of a drawn object travelling along its path, with a ground shadow."""
    half_w_m, half_h_m, strength = shadow
    leftward = plan.params["direction"] == "right_to_left"
    for k, x, y, v in _crossing_states(plan):
        ppm = px_per_m(y, width)
        sprite = match_camera(draw(ppm, plan.params, k), rng)
        if leftward:
            sprite = flip(sprite)
        obj = to_layer(sprite, x, y, v, soften=0.6)
        # The shadow sits under the middle of the footprint, half its depth back.
        shade = shadow_layer(x, y - half_h_m * ppm, half_w_m * ppm, half_h_m * ppm, strength)
        yield k, y, obj, shade


def _vehicle_frames(plan, rng, frames, background, width):
    def draw(ppm, params, k):
        return vehicle_sprite(ppm, params)

    length = 4.9 if plan.params["object"] == "van" else 4.4
    yield from _drawn_renderer(draw, plan, rng, width, (length * 0.55, 1.8 * TOP_FACE_RATIO * 0.55, 0.55))


def _bike_frames(plan, rng, frames, background, width):
    # One pedal turn moves a bicycle about 5 m.
    def draw(ppm, params, k):
        metres = k * plan.params["speed_heights_per_frame"] * PERSON_METRES
        return bike_sprite(ppm, params, phase=2 * math.pi * metres / 5.0)

    yield from _drawn_renderer(draw, plan, rng, width, (0.9, 0.2, 0.35))


def _fast_frames(plan, rng, frames, background, width):
    def draw(ppm, params, k):
        return motorbike_sprite(ppm, params, phase=0.0)  # wheels spin too fast to see anyway

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
        ppm = px_per_m(gy, width)
        vx = (p["ground_to"][0] - p["ground_from"][0]) / max(n - 1, 1)
        sprite = match_camera(thrown_sprite(ppm, p, phase=k * 0.9), rng)
        obj = to_layer(sprite, gx, gy - z * ppm, (vx, -vz_now * ppm / 10.0), soften=0.5)
        # The higher the object, the fainter and wider its shadow.
        fade = 1.0 / (1.0 + 0.5 * z)
        r = p["size_m"] * ppm * (0.5 + 0.1 * z)
        shade = shadow_layer(gx, gy, r, r * 0.35, 0.35 * fade)
        yield k, gy, obj, shade


def _running_frames(plan, rng, frames, background, width):
    index, box, facing = find_walker(frames, background, rng)
    source = cutout(frames[index], background, box)
    src_row = box[1] + box[3]
    plan.params.update({"source_frame": index, "source_box": list(box)})
    heading = 1 if plan.params["direction"] == "left_to_right" else -1
    if facing != heading:
        source = flip(source)
    for k, x, y, v in _crossing_states(plan):
        scale = person_height(y, width) / person_height(src_row, width)
        posed = runner_pose(source, scale, lean=0.12 * heading)
        # Running bobs the body up at each stride (about 3 strides a second).
        bob = 0.03 * person_height(y, width) * abs(math.sin(k * math.pi * 0.3))
        obj = to_layer(posed, x, y - bob, v, soften=0.0)
        ppm = px_per_m(y, width)
        shade = shadow_layer(x, y - 0.05 * ppm, 0.3 * ppm, 0.08 * ppm, 0.25)
        yield k, y, obj, shade


RENDERERS = {
    "vehicle": _vehicle_frames,
    "bike": _bike_frames,
    "thrown_object": _thrown_frames,
    "running": _running_frames,
    "fast_crossing": _fast_frames,
}


def _render(plan: Plan, frames: list[np.ndarray], background: np.ndarray, out: list[np.ndarray],
            labels: np.ndarray, rng, occluders) -> dict:
    shape = frames[0].shape[:2]
    shown = []
    for k, ground_row, obj, shade in RENDERERS[plan.kind](plan, rng, frames, background, shape[1]):
        t = plan.start + k
        if t >= len(frames) or visible_fraction(obj, shape) < MIN_VISIBLE:
            continue
        occlude(obj, ground_row, occluders)
        occlude(shade, ground_row, occluders)
        in_front = walkers_in_front(frames[t], background, ground_row)
        if in_front is not None:
            hide(obj, in_front)
            hide(shade, in_front)
        canvas = frames[t].astype(np.float32)
        darken(canvas, shade)
        over(canvas, obj)
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
    plans = schedule(rng, len(frames), width)
    occluders = occluder_masks(frames[0].shape[:2])
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
