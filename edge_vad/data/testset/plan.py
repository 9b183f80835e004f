"""Planning the injected events: which kinds, when, along which path and at what speed (seeded)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from edge_vad.data.testset.scene import (
    FALL_FRAMES,
    FIRST_NORMAL_FRAMES,
    KIND_BANDS,
    KIND_SPEEDS,
    KINDS,
    LAWN,
    MAX_ANOMALOUS_FRACTION,
    MAX_EVENT,
    MIN_EVENT,
    MIN_GAP,
    PALETTE_BAGS,
    PALETTE_BALL,
    PALETTE_CAR,
    PALETTE_JACKETS,
    PALETTE_TROUSERS,
    STILL_DURATIONS,
    STILL_KINDS,
    THROW_FRAMES,
    UPPER_LAWN,
    WALK_SPEED,
    person_height,
    px_per_m,
    scene_scale,
)
from edge_vad.errors import EdgeVadError


@dataclass
class Plan:
    kind: str
    duration: int
    params: dict
    start: int = 0


def _crossing_path(kind: str, rng: np.random.Generator, width: int, half_len_m: float) -> dict:
    """Edge-to-edge path across the view at a speed typical of ``kind``."""
    s = scene_scale(width)
    lo, hi = KIND_BANDS[kind]
    y_from, y_to = (float(v) * s for v in rng.uniform(lo, hi, size=2))
    direction = int(rng.choice([-1, 1]))
    speed = float(rng.uniform(*KIND_SPEEDS[kind]))
    y_mid = (y_from + y_to) / 2
    margin = half_len_m * px_per_m(max(y_from, y_to), width)
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


def _plan_kind(kind: str, rng: np.random.Generator, width: int) -> Plan:
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
    return Plan(kind, int(params.pop("frames")), params)


def _throw_path(rng: np.random.Generator, width: int) -> dict:
    """A throw from beyond one edge that leaves by the other, under real gravity."""
    s = scene_scale(width)
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


def schedule(rng: np.random.Generator, n_frames: int, width: int) -> list[Plan]:
    """Every moving kind once plus a short extra, shuffled, with random normal gaps (``place``)."""
    kinds = list(KINDS) + [str(rng.choice(["thrown_object", "fast_crossing"]))]
    return place([_plan_kind(kinds[i], rng, width) for i in rng.permutation(len(kinds))], rng, n_frames)


def schedule_still(rng: np.random.Generator, n_frames: int, width: int) -> list[Plan]:
    """Every anomaly of appearance and stillness twice, shuffled, with random normal gaps."""
    kinds = [k for k in STILL_KINDS for _ in range(2)]
    return place([_plan_still(kinds[i], rng, width) for i in rng.permutation(len(kinds))], rng, n_frames)


def place(plans: list[Plan], rng: np.random.Generator, n_frames: int) -> list[Plan]:
    """Start frames for ``plans`` in their order, with random normal gaps.

    Events are dropped from the end when the clip is too short for them, so the
    first FIRST_NORMAL_FRAMES stay normal and the anomalous share stays below
    MAX_ANOMALOUS_FRACTION.
    """
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


def _lawn_point(rng: np.random.Generator, width: int, lawn=LAWN, inset: float = 30.0) -> tuple[float, float]:
    s = scene_scale(width)
    poly = (np.array(lawn, np.float32) * s).reshape(-1, 1, 2)
    lo, hi = poly.reshape(-1, 2).min(0), poly.reshape(-1, 2).max(0)
    while True:
        x, y = rng.uniform(lo, hi)
        if cv2.pointPolygonTest(poly, (float(x), float(y)), True) >= inset * s:
            return float(x), float(y)


def _plan_still(kind: str, rng: np.random.Generator, width: int) -> Plan:
    duration = int(rng.integers(STILL_DURATIONS[kind][0], STILL_DURATIONS[kind][1] + 1))
    if kind == "left_object":
        params = {"object": str(rng.choice(["suitcase", "backpack", "box"])), "color": _pick(rng, PALETTE_BAGS)}
    elif kind == "lying_person":
        params = {"object": "pedestrian cut-out, fallen", "fall": "to_right" if rng.random() < 0.5 else "to_left",
                  "fall_frames": FALL_FRAMES}
    elif kind == "lawn_intruder":
        # Someone standing on the lawn where nobody goes in the clip (the spot is chosen at rendering, away
        # from every walker's path): abnormal only for where they are, and that they stay.
        params = {"object": "pedestrian cut-out, standing on a lawn", "candidates": [
            [round(c, 1) for c in _lawn_point(rng, width, lawn, inset)] for lawn, inset in ((LAWN, 30.0), (UPPER_LAWN, 4.0))
            for _ in range(100)]}
    else:  # pragma: no cover - STILL_KINDS is closed
        raise ValueError(kind)
    return Plan(kind, duration, params)


def counterfactual(plan: Plan, n_frames: int) -> Plan | None:
    """The same moment without the anomaly: nothing for an object that should not be there; for a runner,
    the same person on the same path at walking speed (a speed anomaly's normal twin)."""
    if plan.kind != "running":
        return None
    p = dict(plan.params)
    ratio = p["speed_heights_per_frame"] / WALK_SPEED
    p.update(speed_heights_per_frame=WALK_SPEED, speed_x_walking=1.0, gait="walking")
    duration = min(math.ceil(plan.duration * ratio), n_frames - plan.start)
    # The path is cut where the walker would be when the clip ends, so the speed stays walking speed.
    share = (duration - 1) / max(math.ceil(plan.duration * ratio) - 1, 1)
    (x0, y0), (x1, y1) = p["foot_from"], p["foot_to"]
    p["foot_to"] = [round(x0 + (x1 - x0) * share, 1), round(y0 + (y1 - y0) * share, 1)]
    return Plan("walking", duration, p, plan.start)
