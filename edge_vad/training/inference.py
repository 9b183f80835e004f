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
