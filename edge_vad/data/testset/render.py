"""Rendering a planned event into the frames, and ``inject_anomalies``: the whole schedule."""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from edge_vad.data.testset.cutouts import (
    cutout,
    find_walker,
    lying_pose,
    median_background,
    runner_pose,
    walked_spots,
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
from edge_vad.data.testset.plan import Plan, schedule, schedule_still
from edge_vad.data.testset.plan import counterfactual as counterfactual_plan
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
    bag_sprite,
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


#: how a cut-out person moves: lean into the direction of travel, and the bob of each stride (of the body height)
GAITS = {"running": (0.12, 0.03), "walking": (0.03, 0.01)}


def _person_frames(plan, rng, frames, background, width):
    """A real walker, cut out of the footage, crossing at the plan's speed (running, or walking for the
    running event's counterfactual: the same walker on the same path)."""
    index, box, facing = find_walker(frames, background, rng)
    source = cutout(frames[index], background, box)
    src_row = box[1] + box[3]
    plan.params.update({"source_frame": index, "source_box": list(box)})
    heading = 1 if plan.params["direction"] == "left_to_right" else -1
    if facing != heading:
        source = flip(source)
    lean, bob_share = GAITS[plan.params.get("gait", "running")]
    for k, x, y, v in _crossing_states(plan):
        scale = person_height(y, width) / person_height(src_row, width)
        posed = runner_pose(source, scale, lean=lean * heading)
        # Each stride bobs the body up (about 3 strides a second).
        bob = bob_share * person_height(y, width) * abs(math.sin(k * math.pi * 0.3))
        obj = to_layer(posed, x, y - bob, v, soften=0.0)
        ppm = px_per_m(y, width)
        shade = shadow_layer(x, y - 0.05 * ppm, 0.3 * ppm, 0.08 * ppm, 0.25)
        yield k, y, obj, shade


def _left_object_frames(plan, rng, frames, background, width):
    """A bag standing where walkers walk, from the plan's start to its end (it was put down there)."""
    (x, y), = walked_spots(frames[plan.start:plan.start + plan.duration] or frames, background, rng)
    plan.params["foot"] = [round(x, 1), round(y, 1)]
    ppm = px_per_m(y, width)
    sprite = match_camera(bag_sprite(ppm, plan.params), rng)
    for k in range(plan.duration):
        obj = to_layer(sprite, x, y, (0.0, 0.0), soften=0.5)
        shade = shadow_layer(x, y - 0.03 * ppm, 0.3 * ppm, 0.07 * ppm, 0.35)
        yield k, y, obj, shade


def _lying_person_frames(plan, rng, frames, background, width):
    """A walker who falls where walkers walk and stays on the ground."""
    index, box, facing = find_walker(frames, background, rng)
    source = cutout(frames[index], background, box)
    (x, y), = walked_spots(frames[plan.start:plan.start + plan.duration] or frames, background, rng)
    side = 1 if plan.params["fall"] == "to_right" else -1
    plan.params.update({"source_frame": index, "source_box": list(box), "foot": [round(x, 1), round(y, 1)]})
    scale = person_height(y, width) / person_height(box[1] + box[3], width)
    fall = plan.params["fall_frames"]
    for k in range(plan.duration):
        angle = side * 90.0 * min(1.0, (k + 1) / fall)
        obj = to_layer(lying_pose(source, scale, angle), x, y, (0.0, 0.0), soften=0.3)
        ppm = px_per_m(y, width)
        # Lying, the body's shadow is the body's own outline on the ground: short and along it.
        reach = 0.9 * ppm * min(1.0, (k + 1) / fall)
        shade = shadow_layer(x + side * reach / 2, y, 0.25 * ppm + reach / 2, 0.1 * ppm, 0.3)
        yield k, y, obj, shade


def _lawn_intruder_frames(plan, rng, frames, background, width):
    """A walker standing on the lawn, swaying a little, at the first candidate spot that no walker in the
    clip comes near (so the spot is one where nothing ever is)."""
    index, box, facing = find_walker(frames, background, rng)
    source = cutout(frames[index], background, box)
    feet = np.array(walked_spots(frames, background, rng, n=10_000, margin=0))
    spot = None
    for x, y in plan.params.pop("candidates"):
        if np.min(np.hypot(feet[:, 0] - x, feet[:, 1] - y)) > person_height(y, width):
            spot = (x, y)
            break
    if spot is None:
        raise EdgeVadError("no spot on the lawn that the walkers in these frames keep away from")
    x, y = spot
    plan.params.update({"source_frame": index, "source_box": list(box), "foot": [x, y]})
    scale = person_height(y, width) / person_height(box[1] + box[3], width)
    posed = runner_pose(source, scale, lean=0.0)
    ppm = px_per_m(y, width)
    for k in range(plan.duration):
        sway = 0.6 * math.sin(k * 0.7)
        obj = to_layer(posed, x + sway, y, (0.0, 0.0), soften=0.0)
        shade = shadow_layer(x, y - 0.05 * ppm, 0.3 * ppm, 0.08 * ppm, 0.25)
        yield k, y, obj, shade


RENDERERS = {
    "vehicle": _vehicle_frames,
    "bike": _bike_frames,
    "thrown_object": _thrown_frames,
    "running": _person_frames,
    "fast_crossing": _fast_frames,
    "walking": _person_frames,  # a counterfactual: the runner at walking speed
    "left_object": _left_object_frames,
    "lying_person": _lying_person_frames,
    "lawn_intruder": _lawn_intruder_frames,
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


def inject_anomalies(frames: list[np.ndarray], seed: int = 0, kinds: str = "moving",
                     counterfactual: bool = False) -> tuple[list[np.ndarray], np.ndarray, list[dict]]:
    """Draw a seeded schedule of anomalies into ``frames``: ``kinds`` "moving" (fast movers, vehicles,
    thrown objects: ``KINDS``) or "still" (appearance and stillness: ``STILL_KINDS``).

    Returns the frames (untouched ones are the same arrays as given, changed ones
    new arrays), int8 labels (1 where an injected anomaly is visible) and one
    description per event: kind, first_frame, last_frame (indices into
    ``frames``) and the parameters it was drawn with.

    ``counterfactual``: the same schedule's normal twin, what a detector must not alert on: no injected
    object, except the runner, who walks the same path at walking speed. Labels are then all 0 and the
    events describe what was drawn instead.
    """
    if not frames:
        raise EdgeVadError("no frames to inject anomalies into")
    if kinds not in ("moving", "still"):
        raise EdgeVadError(f"kinds {kinds!r}: 'moving' or 'still'")
    rng = np.random.default_rng(seed)
    width = frames[0].shape[1]
    plans = (schedule if kinds == "moving" else schedule_still)(rng, len(frames), width)
    if counterfactual:
        plans = [twin for twin in (counterfactual_plan(p, len(frames)) for p in plans) if twin is not None]
    occluders = occluder_masks(frames[0].shape[:2])
    background = median_background(frames)
    out = list(frames)
    labels = np.zeros(len(frames), np.int8)
    events = []
    for plan in plans:
        # Each event draws from its own stream, so one event's noise does not
        # shift the next event's parameters (and a counterfactual draws what its twin drew).
        event = _render(plan, frames, background, out, labels, np.random.default_rng([seed, plan.start]), occluders)
        if event:
            events.append(event)
    if counterfactual:
        labels[:] = 0
    return out, labels, events
