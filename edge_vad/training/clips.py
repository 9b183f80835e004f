"""Training clips with the paper's stride augmentation.

Following Hasan et al., clips are also cut with frame skips of 2 and 3, which
shows the model faster motion of the same normal scene.
"""

from __future__ import annotations

import numpy as np
import torch


class ClipDataset(torch.utils.data.Dataset):
    """Clips from one or more contiguous segments; a clip never spans two segments
    (the gap between them is held-out footage)."""

    def __init__(self, segments: list[np.ndarray], clip_length: int, strides=(1,), every: int = 1):
        self.segments = [torch.from_numpy(np.ascontiguousarray(s)) for s in segments]
        self.length = clip_length
        self.index = [
            (k, start, s)
            for k, seg in enumerate(self.segments)
            for s in strides
            for start in range(0, len(seg) - (clip_length - 1) * s, every)
        ]
        if not self.index:
            raise ValueError(f"segments of {[len(s) for s in segments]} frames are too few for clips of {clip_length}")

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> torch.Tensor:
        k, start, s = self.index[i]
        return self.segments[k][start : start + self.length * s : s]
