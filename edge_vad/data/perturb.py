"""The changes a real camera's normal footage goes through: light, noise, shake, compression.

Used to build the normal soak of the test set (``edge_vad.data.testset.soak``) and, on calibration
footage, to fit thresholds that these changes do not cross (``edge-vad calibrate``). Numpy and
OpenCV only: the runtime uses them on a device.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

SHAKE_PX = 2.0
NOISE_SIGMA = 6.0
JPEG_QUALITY = 12


def _gain(frame: np.ndarray, gain: float) -> np.ndarray:
    return cv2.convertScaleAbs(frame, alpha=gain, beta=0.0)


def _noise(frame: np.ndarray, rng: np.random.Generator, sigma: float = NOISE_SIGMA) -> np.ndarray:
    noisy = frame.astype(np.float32) + rng.standard_normal(frame.shape, dtype=np.float32) * np.float32(sigma)
    return np.clip(np.round(noisy), 0, 255).astype(np.uint8)


def _shift(frame: np.ndarray, dx: float, dy: float) -> np.ndarray:
    h, w = frame.shape[:2]
    m = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(frame, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def _jpeg(frame: np.ndarray, quality: int = JPEG_QUALITY) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)


@dataclass(frozen=True)
class Variant:
    name: str
    description: str
    # (frame, position in the clip 0..1, rng) -> frame
    apply: Callable[[np.ndarray, float, np.random.Generator], np.ndarray]


VARIANTS: dict[str, Variant] = {v.name: v for v in (
    Variant("clean", "the evaluation frames as they are", lambda f, t, rng: f),
    Variant("reversed", "played backwards (walkers walk the other way)", lambda f, t, rng: f),
    Variant("darker", "30 % darker (gain 0.7)", lambda f, t, rng: _gain(f, 0.7)),
    Variant("brighter", "30 % brighter (gain 1.3)", lambda f, t, rng: _gain(f, 1.3)),
    Variant("dusk", "brightness falling slowly from 100 % to 45 %", lambda f, t, rng: _gain(f, 1.0 - 0.55 * t)),
    Variant("lights_on", "a lights-on step: 70 % brightness, then 100 % from mid-clip",
            lambda f, t, rng: _gain(f, 0.7 if t < 0.5 else 1.0)),
    Variant("noise", f"sensor noise, σ = {NOISE_SIGMA:g} grey levels", lambda f, t, rng: _noise(f, rng)),
    Variant("shake", f"camera shake: a random shift of up to {SHAKE_PX:g} px every frame",
            lambda f, t, rng: _shift(f, *rng.uniform(-SHAKE_PX, SHAKE_PX, 2))),
    Variant("jpeg", f"heavy JPEG compression (quality {JPEG_QUALITY})", lambda f, t, rng: _jpeg(f)),
)}


#: what a threshold is fitted over besides the footage itself: every change, light steps and ramps
#: included (reversed footage adds walkers going the other way)
CALIBRATION_VARIANTS = ("reversed", "darker", "brighter", "dusk", "lights_on", "noise", "shake", "jpeg")


def apply_variant(frames: list[np.ndarray], name: str, seed: int = 0) -> list[np.ndarray]:
    """``frames`` as the variant ``name`` (``VARIANTS``), seeded."""
    variant = VARIANTS[name]
    src = frames[::-1] if name == "reversed" else frames
    rng = np.random.default_rng([seed, list(VARIANTS).index(name)])
    n = max(len(src) - 1, 1)
    return [variant.apply(f, i / n, rng) for i, f in enumerate(src)]
