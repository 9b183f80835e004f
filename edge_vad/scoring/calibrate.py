"""Calibrating the streaming score on normal footage: the one routine behind every route.

A checkpoint (``edge-vad train``, ``edge-vad calibrate CKPT``), a bundle on a device without torch
(``edge-vad calibrate BUNDLE --out NEW``) and a camera learning its own scene on site all come here
with a ``maps_of(frames) -> error maps`` of their own (PyTorch, or the runtime's CameraStream):
the footage, conditioned as the runtime conditions it, gives the score's statistics; the same
footage with the changes a camera sees (``edge_vad.data.perturb.CALIBRATION_VARIANTS``: darker,
brighter, dusk, lights on, noise, shake, JPEG, played backwards) is added for the threshold, which
is fitted to an alert budget (``edge_vad.scoring.budget``). Torch-free.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from edge_vad.errors import EdgeVadError
from edge_vad.scoring.streaming import DEFAULT_ALERTS_PER_HOUR, Calibration, calibration_warning, fit_calibration

#: the least normal footage a calibration takes, in scored frames (a minute at 10 fps would be 600)
MIN_FRAMES = 60

MapsOf = Callable[[Sequence[np.ndarray]], list]  # BGR frames -> one error map per frame, None while warming up


def runs_of(maps: list) -> list[np.ndarray]:
    """Contiguous runs of error maps (a None, warming up or re-settling, splits the stream)."""
    runs, cur = [], []
    for m in maps:
        if m is None:
            if cur:
                runs.append(np.stack(cur))
            cur = []
        else:
            cur.append(np.asarray(m, np.float32))
    if cur:
        runs.append(np.stack(cur))
    return runs


def frames_needed(grid: int, agg: str) -> int:
    """Scored normal frames a calibration needs at the least; below ``MIN_FRAMES_PER_CELL`` per grid cell it
    is made but warned about (``calibration_warning``)."""
    return MIN_FRAMES


def calibrate_on_footage(maps_of: MapsOf, segments: list[list[np.ndarray]], *, grid: int, topk: int, ema: float,
                         agg: str, fps: float, alerts_per_hour: float | None = DEFAULT_ALERTS_PER_HOUR,
                         augment: bool = True, target_far: float = 0.01, source: dict | None = None,
                         min_frames: int = 3, end_frames: int = 5, seed: int = 0, log=None) -> Calibration:
    """Fit a calibration on ``segments`` (lists of consecutive BGR frames of normal footage)."""
    from edge_vad.data.perturb import CALIBRATION_VARIANTS, apply_variant

    clean = [r for seg in segments for r in runs_of(maps_of(seg))]
    scored = sum(len(r) for r in clean)
    need = frames_needed(grid, agg)
    if scored < need:
        raise EdgeVadError(
            f"{scored} scored frames of normal footage are too few to calibrate a {grid}×{grid} score: give at "
            f"least {need} ({need / fps:.0f} s at {fps:g} fps, after each segment's warm-up), e.g. a longer --frames "
            "range or more footage of this camera")
    extra = []
    if augment and alerts_per_hour is not None:
        for name in CALIBRATION_VARIANTS:
            if log:
                log(f"calibration footage as the camera may also see it: {name}")
            extra += [r for seg in segments for r in runs_of(maps_of(apply_variant(seg, name, seed)))]
    src = dict(source or {})
    src.update(augmented=list(CALIBRATION_VARIANTS) if extra else [], conditioned=True)
    calib = fit_calibration(clean, grid=grid, topk=topk, ema=ema, target_far=target_far, source=src, agg=agg,
                            alerts_per_hour=alerts_per_hour, fps=fps, threshold_maps=extra,
                            min_frames=min_frames, end_frames=end_frames)
    warning = calibration_warning(calib) if agg != "max" else None
    if warning and log:
        log(f"warning: {warning}")
    return calib
