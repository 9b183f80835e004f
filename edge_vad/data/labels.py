"""Per-frame labels: 0 normal, 1 anomalous, from ``.npy`` or ``.txt``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_vad.errors import EdgeVadError


def load_labels(path: str | Path, frames: int | None = None) -> np.ndarray:
    path = Path(path)
    if not path.exists():
        raise EdgeVadError(f"{path}: labels file not found")
    try:
        if path.suffix == ".npy":
            labels = np.load(path, allow_pickle=False)
        else:
            labels = np.loadtxt(path, dtype=np.float64, ndmin=1)
    except ValueError as exc:
        raise EdgeVadError(f"{path}: cannot read labels ({exc})") from exc
    labels = np.asarray(labels).reshape(-1)
    bad = ~np.isin(labels, (0, 1))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise EdgeVadError(f"{path}: label at frame {i} is {labels[i].item():g}; labels must be 0 (normal) or 1 (anomalous)")
    if frames is not None and labels.size != frames:
        raise EdgeVadError(f"{path}: {labels.size} labels for a video of {frames} frames")
    return labels.astype(np.int8)


def save_labels(path: str | Path, labels: np.ndarray) -> None:
    np.save(Path(path), np.asarray(labels, dtype=np.int8), allow_pickle=False)
