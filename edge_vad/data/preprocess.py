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

    @property
    def channels(self) -> int:
        return 1 if self.color == "gray" else 3

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "InputSpec":
        return cls(**d)


def preprocess(frame_bgr: np.ndarray, spec: InputSpec) -> np.ndarray:
    """BGR uint8 H×W×3 → float32 C×H×W in [low, high]."""
    if spec.color == "gray":
        img = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2GRAY) if frame_bgr.ndim == 3 else frame_bgr
    else:
        img = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB)
    # INTER_AREA averages the pixels it drops: a 4-7× downscale with bilinear would alias.
    img = cv2.resize(img, (spec.width, spec.height), interpolation=cv2.INTER_AREA)
    out = img.astype(np.float32) * ((spec.high - spec.low) / 255.0) + spec.low
    return out[None] if out.ndim == 2 else np.ascontiguousarray(out.transpose(2, 0, 1))


def preprocess_many(frames, spec: InputSpec) -> np.ndarray:
    return np.stack([preprocess(f, spec) for f in frames]) if frames else np.zeros((0, spec.channels, spec.height, spec.width), np.float32)
