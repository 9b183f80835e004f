"""Frame preprocessing shared by training, evaluation and the runtime.

One entry point, driven by the model's ``InputSpec``, so the device feeds the model exactly
what it saw in training: the appearance channels (``appearance``), and for models with motion
inputs the stateful motion channels (``motion``).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from edge_vad.data.appearance import preprocess, to_float
from edge_vad.data.motion import make_motion
from edge_vad.data.spec import InputSpec

__all__ = ["FramePreprocessor", "InputSpec", "preprocess", "preprocess_many", "to_float"]


class FramePreprocessor:
    """Per-camera preprocessing: stateless for appearance, stateful when the spec has motion."""

    def __init__(self, spec: InputSpec):
        self.spec = spec
        self._motion = make_motion(spec) if spec.motion else None
        self._plain = replace(spec, motion=None)

    def reset(self) -> None:
        if self._motion is not None:
            self._motion.reset()

    def __call__(self, frame_bgr: np.ndarray) -> np.ndarray:
        return self._motion(frame_bgr) if self._motion is not None else preprocess(frame_bgr, self._plain)


def preprocess_many(frames, spec: InputSpec) -> np.ndarray:
    """A contiguous sequence of frames, as a camera would see them from its first frame."""
    if not frames:
        return np.zeros((0, *(spec.table or (spec.channels, spec.height, spec.width))), np.float32)
    prep = FramePreprocessor(spec)
    return np.stack([prep(f) for f in frames])
