"""Frame preprocessing shared by training, evaluation and the runtime.

One function, driven by the model's ``InputSpec``, so the device feeds the model
exactly what it saw in training.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import cv2
import numpy as np


@dataclass(frozen=True)
class InputSpec:
    color: Literal["gray", "rgb"]
    height: int
    width: int
    low: float = 0.0
    high: float = 1.0
    # Frame rate the model was trained at; None means "whatever the source gives".
    fps: float | None = None
    # Motion channels appended to the frame (edge_vad.data.motion), e.g. "flow"; None for none.
    motion: str | None = None

    @property
    def channels(self) -> int:
        base = 1 if self.color == "gray" else 3
        if self.motion:
            from edge_vad.data.motion import extra_channels

            base += extra_channels(self.motion)
        return base

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "InputSpec":
        return cls(**d)


def preprocess(frame_bgr: np.ndarray, spec: InputSpec) -> np.ndarray:
    """BGR uint8 H×W×3 → float32 C×H×W in [low, high] (appearance only: motion needs a sequence)."""
    if spec.color == "gray":
        img = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2GRAY) if frame_bgr.ndim == 3 else frame_bgr
    else:
        img = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB)
    # INTER_AREA averages the pixels it drops: a 4-7× downscale with bilinear would alias.
    img = cv2.resize(img, (spec.width, spec.height), interpolation=cv2.INTER_AREA)
    return to_float(img, spec)


def to_float(img: np.ndarray, spec: InputSpec) -> np.ndarray:
    """uint8 H×W(×3) at the input size → float32 C×H×W in [low, high]."""
    out = img.astype(np.float32) * ((spec.high - spec.low) / 255.0) + spec.low
    return out[None] if out.ndim == 2 else np.ascontiguousarray(out.transpose(2, 0, 1))


class FramePreprocessor:
    """Per-camera preprocessing: stateless for appearance, stateful when the spec has motion."""

    def __init__(self, spec: InputSpec):
        self.spec = spec
        self._motion = None
        if spec.motion:
            from edge_vad.data.motion import make_motion

            self._motion = make_motion(spec)

    def reset(self) -> None:
        if self._motion is not None:
            self._motion.reset()

    def __call__(self, frame_bgr: np.ndarray) -> np.ndarray:
        return self._motion(frame_bgr) if self._motion is not None else preprocess(frame_bgr, self.spec)


def preprocess_many(frames, spec: InputSpec) -> np.ndarray:
    """A contiguous sequence of frames, as a camera would see them from its first frame."""
    if not frames:
        return np.zeros((0, spec.channels, spec.height, spec.width), np.float32)
    prep = FramePreprocessor(spec)
    return np.stack([prep(f) for f in frames])
