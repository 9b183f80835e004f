"""Frame-level ROC, AUC and EER (numpy; the same conventions as the seed code)."""

from __future__ import annotations

import numpy as np


def roc_curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """FPR, TPR and thresholds for "anomalous if score >= threshold" (ties grouped)."""
    y = np.asarray(labels).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    if y.all() or not y.any():
        raise ValueError("ROC needs both normal and anomalous frames")
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    distinct = np.r_[np.flatnonzero(np.diff(s)), y.size - 1]
    tps = np.cumsum(y)[distinct]
    fps = (distinct + 1) - tps
    tpr = np.r_[0.0, tps / y.sum()]
    fpr = np.r_[0.0, fps / (~y).sum()]
    return fpr, tpr, np.r_[np.inf, s[distinct]]


def auc(labels, scores) -> float:
    fpr, tpr, _ = roc_curve(labels, scores)
    return float(np.trapezoid(tpr, fpr))


def eer(labels, scores) -> float:
    """(FAR + FRR) / 2 at the threshold where they are closest (t2mhanh's compute_eer)."""
    fpr, tpr, _ = roc_curve(labels, scores)
    frr = 1.0 - tpr
    i = int(np.argmin(np.abs(fpr - frr)))
    return float((fpr[i] + frr[i]) / 2.0)


def regularity(errors: np.ndarray) -> np.ndarray:
    """The paper's offline score: 1 − per-video min–max normalised error."""
    e = np.asarray(errors, dtype=np.float64)
    span = e.max() - e.min()
    return 1.0 - (e - e.min()) / (span if span > 0 else 1.0)
