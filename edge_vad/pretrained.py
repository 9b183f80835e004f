"""Pre-trained models that ship with edge-vad, found by name wherever a path is taken.

``edge-vad convert stconvlstm-edge --target jetson``, ``edge-vad eval hf2vad-edge …``,
``edge-vad run --bundle hf2vad-edge``, ``edge-vad calibrate bisho-edge --data …``: a name is
``MODEL-PRESET``; the checkpoint (weights, config, calibration) lives in
``edge_vad/assets/checkpoints/NAME`` and its CPU bundle in ``edge_vad/assets/bundles/NAME``. A path
that exists always wins over a name, so a user's own ``./stconvlstm-edge`` folder is never shadowed.
What each was measured to do is in ``edge_vad/assets/checkpoints/pretrained.json`` (``edge-vad models``
prints it; ``benchmarks/pretrained_numbers.py`` measures it again).
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path

from edge_vad.errors import EdgeVadError

ASSETS = Path(__file__).resolve().parent / "assets"
CHECKPOINTS = ASSETS / "checkpoints"
BUNDLES = ASSETS / "bundles"
NUMBERS = CHECKPOINTS / "pretrained.json"
KINDS = {"checkpoint": (CHECKPOINTS,), "bundle": (BUNDLES,), "any": (BUNDLES, CHECKPOINTS)}


def names() -> list[str]:
    """Every shipped name (a checkpoint or a bundle of that name)."""
    found = {p.name for root in (CHECKPOINTS, BUNDLES) if root.is_dir() for p in root.iterdir() if p.is_dir()}
    return sorted(found)


def resolve(value: str | Path, kind: str = "any") -> Path:
    """``value`` as a path if it exists, else the shipped checkpoint or bundle of that name.

    ``kind``: "checkpoint" (convert, calibrate a checkpoint, bench), "bundle" (run, package, build-engine),
    "any" (eval: a bundle if one ships, else the checkpoint)."""
    path = Path(value)
    if path.exists():
        return path
    name = str(value)
    for root in KINDS[kind]:
        candidate = root / name
        if candidate.is_dir():
            return candidate
    known = names()
    if "/" in name or name.startswith("."):
        return path  # a path that does not exist: the command names it in its own error
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    raise EdgeVadError(f"{name}: no such file or folder, and no pre-trained {kind if kind != 'any' else 'model'} of "
                       f"that name (pre-trained: {', '.join(known) or 'none'}){hint}")


def numbers() -> dict:
    """Measured numbers per shipped name (empty when the file is absent)."""
    return json.loads(NUMBERS.read_text()) if NUMBERS.exists() else {}
