"""A frame's appearance channels at the model's input size, as training saw them."""

from __future__ import annotations

import cv2
import numpy as np

from edge_vad.data.spec import InputSpec


def gray(frame_bgr: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2GRAY) if frame_bgr.ndim == 3 else frame_bgr


def preprocess(frame_bgr: np.ndarray, spec: InputSpec) -> np.ndarray:
    """BGR uint8 H×W×3 → float32 C×H×W in [low, high] (appearance only: motion needs a sequence)."""
    img = gray(frame_bgr) if spec.color == "gray" else cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB)
    # INTER_AREA averages the pixels it drops: a 4-7× downscale with bilinear would alias.
    img = cv2.resize(img, (spec.width, spec.height), interpolation=cv2.INTER_AREA)
    return to_float(img, spec)


def to_float(img: np.ndarray, spec: InputSpec) -> np.ndarray:
    """uint8 H×W(×3) at the input size → float32 C×H×W in [low, high]."""
    out = img.astype(np.float32) * ((spec.high - spec.low) / 255.0) + spec.low
    return out[None] if out.ndim == 2 else np.ascontiguousarray(out.transpose(2, 0, 1))
