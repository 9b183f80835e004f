"""Normal soak footage: the evaluation range with the changes a real camera sees, and nothing abnormal.

Every frame here is normal, so any event raised on it is a false alert. The variants are the
evaluation frames (never trained on) as they are, played backwards, and with one change each:
darker and brighter (±30 % gain), dusk (a slow fall to 45 % brightness), a lights-on step (70 % → 100 %
at mid-clip), sensor noise (σ = 6 grey levels), a small camera shake (up to 2 px, every frame) and heavy
JPEG compression (quality 12). ``random_stream`` strings seeded segments of them, forwards and
backwards in turn so the footage stays continuous, into one long stream (≥ 10 minutes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

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


def soak_variant(frames: list[np.ndarray], name: str, seed: int = 0) -> list[np.ndarray]:
    """``frames`` (the evaluation range) as the soak variant ``name``."""
    variant = VARIANTS[name]
    src = frames[::-1] if name == "reversed" else frames
    rng = np.random.default_rng([seed, list(VARIANTS).index(name)])
    n = max(len(src) - 1, 1)
    return [variant.apply(f, i / n, rng) for i, f in enumerate(src)]


def random_stream(frames: list[np.ndarray], minutes: float, fps: float, seed: int = 0
                  ) -> Iterator[tuple[np.ndarray, str]]:
    """A long normal stream: segments of 60–315 frames, each with a seeded variant (clean twice as likely
    as any other), forwards and backwards in turn so one segment's last frame is the next one's first.
    Yields (frame, variant name)."""
    rng = np.random.default_rng([seed, 1_000])
    names = ["clean", "clean"] + [n for n in VARIANTS if n not in ("clean", "reversed")]
    total = int(round(minutes * 60 * fps))
    done, forward, pos = 0, True, 0
    while done < total:
        name = str(rng.choice(names))
        length = int(min(rng.integers(60, len(frames) + 1), total - done))
        stop = pos + length if forward else pos - length
        if forward and stop > len(frames):
            stop = len(frames)
        if not forward and stop < -1:
            stop = -1
        idx = list(range(pos, stop)) if forward else list(range(pos, stop, -1))
        seg_rng = np.random.default_rng([seed, 1_001, done])
        n = max(len(idx) - 1, 1)
        for k, i in enumerate(idx):
            yield VARIANTS[name].apply(frames[i], k / n, seg_rng), name
        done += len(idx)
        pos = idx[-1]
        if (forward and pos >= len(frames) - 1) or (not forward and pos <= 0) or rng.random() < 0.5:
            forward = not forward
