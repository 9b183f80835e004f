"""Batched window scoring with the torch model (evaluation and calibration)."""

from __future__ import annotations

import numpy as np
import torch


@torch.no_grad()
def score_frames(model, frames: np.ndarray, batch: int = 8, progress=None) -> tuple[np.ndarray, np.ndarray]:
    """Errors and error maps for every window of ``frames`` (N×C×H×W), one per window end.

    Windows are independent, so scoring them in batches gives exactly what the
    streaming step gives frame by frame, only faster.
    """
    if getattr(model, "carries_state", False):
        return _score_carried(model, frames, progress)
    length = model.clip_length
    starts = list(range(len(frames) - length + 1))
    src = torch.from_numpy(np.ascontiguousarray(frames))
    errors, maps = [], []
    for i in range(0, len(starts), batch):
        clips = torch.stack([src[s : s + length] for s in starts[i : i + batch]])
        out = model.score_windows(clips)
        errors.append(out["error"].numpy())
        maps.append(out["error_map"][:, 0].numpy())
        if progress is not None:
            progress.update(len(clips))
    if not errors:
        return np.zeros(0, np.float32), np.zeros((0,) + frames.shape[-2:], np.float32)
    return np.concatenate(errors), np.concatenate(maps)


@torch.no_grad()
def _score_carried(model, frames: np.ndarray, progress=None) -> tuple[np.ndarray, np.ndarray]:
    """A model whose state runs from the first frame on scores frame by frame, as
    the deployed step does; outputs start after its warm-up, like the windows'."""
    step = model.step_module().eval()
    state = [torch.zeros(1, *s.shape) for s in model.state_specs()]
    errors, maps = [], []
    for i, f in enumerate(frames):
        error, error_map, *rest = step(torch.from_numpy(np.ascontiguousarray(f[None])), *state)
        state = rest[:len(state)]
        if i < model.warmup_frames:
            continue
        errors.append(float(error[0]))
        maps.append(error_map[0, 0].numpy())
        if progress is not None:
            progress.update(1)
    if not errors:
        return np.zeros(0, np.float32), np.zeros((0,) + frames.shape[-2:], np.float32)
    return np.asarray(errors, np.float32), np.stack(maps)
