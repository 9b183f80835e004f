"""Normal soak footage: the evaluation range with the changes a real camera sees, and nothing abnormal.

Every frame here is normal, so any event raised on it is a false alert. The variants are the
evaluation frames (never trained on) as they are, played backwards, and with one change each:
darker and brighter (±30 % gain), dusk (a slow fall to 45 % brightness), a lights-on step (70 % → 100 %
at mid-clip), sensor noise (σ = 6 grey levels), a small camera shake (up to 2 px, every frame) and heavy
JPEG compression (quality 12). ``random_stream`` strings seeded segments of them, forwards and
backwards in turn so the footage stays continuous, into one long stream (≥ 10 minutes).
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from edge_vad.data.perturb import VARIANTS, apply_variant

__all__ = ["VARIANTS", "soak_variant", "random_stream"]


def soak_variant(frames: list[np.ndarray], name: str, seed: int = 0) -> list[np.ndarray]:
    """``frames`` (the evaluation range) as the soak variant ``name``."""
    return apply_variant(frames, name, seed)


def random_stream(frames: list[np.ndarray], minutes: float, fps: float, seed: int = 0
                  ) -> Iterator[tuple[np.ndarray, str]]:
    """A long normal stream: segments of 60 frames to the whole clip, each with a seeded variant (clean twice as likely
    as any other), forwards and backwards in turn so one segment's last frame is the next one's first.
    Yields (frame, variant name)."""
    rng = np.random.default_rng([seed, 1_000])
    names = ["clean", "clean"] + [n for n in VARIANTS if n not in ("clean", "reversed")]
    total = int(round(minutes * 60 * fps))
    done, forward, pos = 0, True, 0
    while done < total:
        name = str(rng.choice(names))
        length = int(min(rng.integers(min(60, len(frames)), len(frames) + 1), total - done))
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
