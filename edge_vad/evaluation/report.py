"""Plots a person would rather look at than a table: ROC, score timeline, error heatmap."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_vad.errors import require
from edge_vad.evaluation.scorers import Scores
from edge_vad.scoring.metrics import regularity, roc_curve


def _segments(labels: np.ndarray):
    edges = np.diff(np.r_[0, labels.astype(int), 0])
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)))


def write_report(scores: Scores, labels: np.ndarray, result: dict, out: Path) -> list[Path]:
    matplotlib = require("matplotlib", "train", "Writing report plots")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    n = min(len(labels), len(scores.errors))
    labels = np.asarray(labels[:n])
    valid = ~np.isnan(scores.errors[:n]) & ~np.isnan(scores.stream[:n])
    y = labels[valid]
    offline = 1.0 - regularity(scores.errors[:n][valid])
    stream = scores.stream[:n][valid]
    paths = []

    fig, ax = plt.subplots(figsize=(5, 5))
    for name, s, key in (("streaming", stream, "auc_stream"), ("offline (min–max)", offline, "auc_offline")):
        fpr, tpr, _ = roc_curve(y, s)
        ax.plot(fpr, tpr, label=f"{name}  AUC {result[key]:.3f}")
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=f"ROC — {scores.name}")
    ax.legend(loc="lower right")
    fig.tight_layout()
    paths.append(out / "roc.png")
    fig.savefig(paths[-1], dpi=120)
    plt.close(fig)

    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 5), sharex=True)
    idx = np.arange(n)
    for a in (ax1, ax2):
        for s, e in _segments(labels):
            a.axvspan(s - 0.5, e - 0.5, color="tab:red", alpha=0.15, lw=0)
    ax1.plot(idx, scores.stream[:n], lw=1.2, label="streaming score (σ)")
    if scores.threshold is not None:
        ax1.axhline(scores.threshold, color="k", ls="--", lw=0.8, label=f"threshold {scores.threshold:.2f} σ")
    ax1.set_ylabel("streaming score")
    ax1.legend(loc="upper right", fontsize=8)
    reg = np.full(n, np.nan)
    reg[valid] = regularity(scores.errors[:n][valid])
    ax2.plot(idx, reg, lw=1.2, color="tab:green", label="regularity s(t) (offline)")
    ax2.set(ylabel="regularity", xlabel="frame (red: labelled anomalous)")
    ax2.legend(loc="lower right", fontsize=8)
    fig.suptitle(f"{scores.name}: AUC streaming {result['auc_stream']:.3f}, offline {result['auc_offline']:.3f}")
    fig.tight_layout()
    paths.append(out / "timeline.png")
    fig.savefig(paths[-1], dpi=120)
    plt.close(fig)

    if scores.peak_map is not None:
        fig, ax = plt.subplots(figsize=(5, 5))
        im = ax.imshow(scores.peak_map, cmap="inferno")
        ax.set_title("error map at the peak streaming score")
        ax.axis("off")
        fig.colorbar(im, ax=ax, fraction=0.046)
        fig.tight_layout()
        paths.append(out / "peak_error_map.png")
        fig.savefig(paths[-1], dpi=120)
        plt.close(fig)
    return paths
