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


def write_report(scores: Scores, labels: np.ndarray, result: dict, out: Path, video: Path | None = None) -> list[Path]:
    """``roc.png`` (with the operating point at the threshold), ``timeline.png`` (the streaming score
    clipped to a readable range, the threshold, the events it raises as bands beside the labelled
    anomalies) and ``peak_error_map.png`` (the error map at the highest score over its frame, colour
    bar in the map's own units, frame number) for ``edge-vad eval --report``."""
    matplotlib = require("matplotlib", "demo", "Writing report plots")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from edge_vad.evaluation.alerts import events_from_scores

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
    if scores.threshold is not None and (y == 0).any() and (y == 1).any():
        alarm = stream >= scores.threshold
        op = (float(alarm[y == 0].mean()), float(alarm[y == 1].mean()))
        ax.plot(*op, "o", color="k", ms=7, label=f"at threshold {scores.threshold:.2f}: FPR {op[0]:.1%}, TPR {op[1]:.1%}")
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set(xlabel="false positive rate (normal frames in alarm)", ylabel="true positive rate", title=f"ROC — {scores.name}")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    paths.append(out / "roc.png")
    fig.savefig(paths[-1], dpi=120)
    plt.close(fig)

    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(11, 5), sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    idx = np.arange(n)
    for a in (ax1, ax2):
        for s, e in _segments(labels):
            a.axvspan(s - 0.5, e - 0.5, color="tab:red", alpha=0.15, lw=0)
    score = scores.stream[:n]
    ax1.plot(idx, score, lw=1.2, label="streaming score")
    if scores.threshold is not None:
        ax1.axhline(scores.threshold, color="k", ls="--", lw=0.8, label=f"threshold {scores.threshold:.2f}")
        for e in events_from_scores(score, scores.threshold):
            ax1.axvspan(e.start - 0.5, (n if e.end is None else e.end) - 0.5, ymin=0, ymax=0.07, color="tab:orange", lw=0)
        ax1.plot([], [], color="tab:orange", lw=6, label="events raised")
    lo, hi = _clipped_limits(score, scores.threshold)
    ax1.set_ylim(lo, hi)
    over = score > hi
    if over.any():
        ax1.plot(idx[over], np.full(over.sum(), hi), "^", ms=3, color="tab:blue", clip_on=False, label="clipped peaks")
    ax1.set_ylabel("streaming score")
    ax1.legend(loc="upper right", fontsize=8, ncol=2)
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
        import cv2

        peak = int(np.nanargmax(np.where(np.isnan(score), -np.inf, score)))
        fig, ax = plt.subplots(figsize=(6, 5))
        frame = None
        if video is not None:
            from edge_vad.data.frames import read_frames

            frame = next(iter(read_frames(video, peak, peak + 1)), None)
        emap = np.asarray(scores.peak_map, np.float32)
        if frame is not None and emap.ndim == 2 and min(emap.shape) > 1:
            ax.imshow(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
            im = ax.imshow(cv2.resize(emap, (frame.shape[1], frame.shape[0]), interpolation=cv2.INTER_LINEAR),
                           cmap="inferno", alpha=0.55)
        else:
            im = ax.imshow(emap, cmap="inferno", aspect="auto")
        ax.set_title(f"error map at the peak score (frame {peak}, score {score[peak]:.2f})", fontsize=9)
        ax.axis("off")
        bar = fig.colorbar(im, ax=ax, fraction=0.046)
        bar.set_label("model error (its own units)")
        fig.tight_layout()
        paths.append(out / "peak_error_map.png")
        fig.savefig(paths[-1], dpi=120)
        plt.close(fig)
    return paths


def _clipped_limits(values: np.ndarray, threshold: float | None) -> tuple[float, float]:
    """y limits that keep the threshold and the bulk readable: a 100 σ peak must not flatten the rest."""
    v = values[np.isfinite(values)]
    if not len(v):
        return 0.0, 1.0
    top = float(np.quantile(v, 0.99))
    if threshold is not None:
        top = max(top, 1.6 * threshold if threshold > 0 else threshold + 1.0)
    lo = min(float(np.quantile(v, 0.01)), threshold if threshold is not None else np.inf)
    pad = 0.08 * (top - lo or 1.0)
    return lo - pad, top + pad


def write_alert_timelines(result: dict, out: Path) -> list[Path]:
    """One picture per clip of ``evaluate_testset``'s result: the score against the threshold, the events
    raised as bands, the injected anomalies shaded (green when they caused an event, red when not), and
    the counterfactual's score (the same frames without the anomaly) dashed beneath."""
    matplotlib = require("matplotlib", "demo", "Writing report plots")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tau = result["threshold"]
    paths = []
    for name, clip in result["clips"].items():
        series = result["series"][name]
        score, twin = np.asarray(series["score"], float), np.asarray(series["counterfactual"], float)
        fig, ax = plt.subplots(figsize=(12, 3.6))
        x = np.arange(len(score))
        for a in clip["anomalies"]:
            ax.axvspan(a["first"] - 0.5, a["last"] + 0.5, color="tab:green" if a["caused"] else "tab:red",
                       alpha=0.18, lw=0)
            ax.text((a["first"] + a["last"]) / 2, 1.0, a["kind"].replace("_", " "), transform=ax.get_xaxis_transform(),
                    ha="center", va="bottom", fontsize=7)
        for e in clip["events"]:
            end = len(score) if e["end"] is None else e["end"]
            ax.axvspan(e["start"] - 0.5, end - 0.5, ymin=0.0, ymax=0.06, color="tab:orange", lw=0)
        ax.plot(x, twin, color="0.55", lw=1.0, ls="--", label="same frames without the anomaly")
        ax.plot(x, score, color="tab:blue", lw=1.3, label="score")
        ax.axhline(tau, color="k", ls=":", lw=1.0, label=f"threshold {tau:.2f}")
        lo, hi = _clipped_limits(np.concatenate([score, twin]), tau)
        ax.set_ylim(lo, hi)
        over = score > hi
        if over.any():
            ax.plot(x[over], np.full(over.sum(), hi), "^", color="tab:blue", ms=3, clip_on=False,
                    label="above the plot (clipped)")
        handles, labels = ax.get_legend_handles_labels()
        handles += [Patch(color="tab:green", alpha=0.3), Patch(color="tab:red", alpha=0.3),
                    Patch(color="tab:orange")]
        labels += ["anomaly that caused an event", "anomaly that did not", "event raised"]
        ax.legend(handles, labels, loc="upper left", fontsize=7, ncol=3, framealpha=0.85)
        summary = result["summary"]
        ax.set(xlabel="frame", ylabel="score",
               title=f"{result['model']} — {name}: caused {summary.get('caused_' + name, '?')}, AUC {clip['auc_stream']:.3f}")
        fig.tight_layout()
        paths.append(out / f"alerts_{name}.png")
        fig.savefig(paths[-1], dpi=120)
        plt.close(fig)
    return paths
