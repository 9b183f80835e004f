"""The streaming score: what a live camera can compute, frame by frame.

Causal (no future frames) and free of per-video min–max. The per-pixel error
map is pooled on a grid of cells; each cell is centred on its mean error over
held-out *normal* footage, because normal error is far from uniform (walkers
make error where they walk, the sky makes none), and scaled by its spread. The mean of the top-k cell
z-scores is smoothed by a causal EMA and z-scored once more, so the threshold
reads in standard deviations of normal behaviour and is set for a target
false-alarm rate on the held-out frames.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import cv2
import numpy as np


# What every model's streaming score starts from; a model's config overrides what
# its error maps need (stmae scores the whole frame: grid 1).
SCORE_DEFAULTS = {"score_grid": 12, "score_topk": 2, "score_ema": 0.5}


@dataclass
class Calibration:
    grid: int
    topk: int
    ema: float
    cell_mean: list[float]
    cell_std: list[float]
    score_mean: float
    score_std: float
    threshold: float
    target_far: float
    frames: int
    source: dict = field(default_factory=dict)
    # How cell z-scores become one number: "topk" (mean of the k largest: peak
    # intensity) or "sumpos" (sum of positive z: intensity times extent, which
    # counts the long error streak a fast object leaves over the predicted frames), or "max" (the largest
    # value of the map, for maps that already hold one normalised score per object).
    agg: str = "topk"
    # The alert budget the threshold was fitted for (false events per hour on normal footage) and how
    # (edge_vad.scoring.budget.BudgetFit); None: the older frame-quantile threshold (target_far).
    alerts_per_hour: float | None = None
    threshold_fit: dict | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Calibration":
        return cls(**d)

    def describe(self) -> str:
        if self.threshold_fit:
            from edge_vad.scoring.budget import BudgetFit

            return BudgetFit(**self.threshold_fit).describe()
        return f"threshold {self.threshold:.2f} σ for {self.target_far:.1%} of {self.frames} normal frames"


def cell_errors(error_map: np.ndarray, grid: int) -> np.ndarray:
    """Mean error in each of grid×grid cells (area interpolation averages exactly)."""
    m = np.asarray(error_map, dtype=np.float32).reshape(error_map.shape[-2:])
    return cv2.resize(m, (grid, grid), interpolation=cv2.INTER_AREA).reshape(-1)


def _topk_mean(z: np.ndarray, k: int) -> float:
    return float(np.partition(z, -k)[-k:].mean()) if k < z.size else float(z.mean())


class StreamingScorer:
    """Per-camera scorer; ``reset()`` after a gap in the stream."""

    def __init__(self, calib: Calibration):
        self.calib = calib
        self._mean = np.asarray(calib.cell_mean, np.float32)
        self._inv_std = 1.0 / np.asarray(calib.cell_std, np.float32)
        self._ema: float | None = None

    def reset(self) -> None:
        self._ema = None

    # The smoother is the scorer's only memory; a restarted daemon restores it
    # so the first scores after a restart continue the curve instead of jumping.
    @property
    def smoothed(self) -> float | None:
        return self._ema

    @smoothed.setter
    def smoothed(self, value: float | None) -> None:
        self._ema = None if value is None else float(value)

    def raw(self, error_map: np.ndarray) -> float:
        """Smoothed top-k cell z-score, before the final normalisation."""
        if self.calib.agg == "max":
            s = float(np.max(error_map))
        else:
            z = (cell_errors(error_map, self.calib.grid) - self._mean) * self._inv_std
            s = float(np.maximum(z, 0.0).sum()) if self.calib.agg == "sumpos" else _topk_mean(z, self.calib.topk)
        a = self.calib.ema
        self._ema = s if self._ema is None else a * self._ema + (1.0 - a) * s
        return self._ema

    def __call__(self, error_map: np.ndarray) -> float:
        return (self.raw(error_map) - self.calib.score_mean) / self.calib.score_std


#: below this many calibration frames per grid cell, per-cell statistics describe
#: the calibration clip rather than the scene (measured in docs/results.md: fitted
#: on 80 frames, a 12×12 grid raised 55-100 % false alarms on the next 40 frames)
MIN_FRAMES_PER_CELL = 4


def calibration_warning(calib: "Calibration", fix: str = "edge-vad calibrate CKPT --data NORMAL_VIDEO") -> str | None:
    """A sentence for the user when the threshold is unlikely to hold on new footage."""
    cells = calib.grid * calib.grid
    need = MIN_FRAMES_PER_CELL * cells
    if calib.frames >= need:
        return None
    return (f"the score was calibrated on {calib.frames} normal frames for {cells} grid cells; expect more false "
            f"alarms than the {calib.target_far:.1%} target on new footage. Calibrate on at least {need} frames "
            f"of normal footage from the camera: {fix}")


#: alert budget a calibration is fitted for unless asked otherwise (false events per hour on normal footage)
DEFAULT_ALERTS_PER_HOUR = 1.0


def fit_calibration(
    error_maps: list[np.ndarray] | np.ndarray,
    grid: int,
    topk: int,
    ema: float,
    target_far: float = 0.01,
    source: dict | None = None,
    agg: str = "topk",
    alerts_per_hour: float | None = None,
    fps: float | None = None,
    threshold_maps: list[np.ndarray] | None = None,
    min_frames: int = 3,
    end_frames: int = 5,
) -> Calibration:
    """Fit the streaming score on error maps of held-out normal frames.

    ``error_maps`` is one sequence of consecutive frames (N×H×W) or a list of
    such sequences; the causal smoother restarts at each. The cell statistics and the score's
    normalisation come from them.

    The threshold: with ``alerts_per_hour`` (and the footage's ``fps``), the one that keeps the event
    tracker (``min_frames``, ``end_frames``) within that many false events per hour
    (``edge_vad.scoring.budget``), fitted on these runs and on ``threshold_maps``, more normal runs
    (e.g. the same footage darker, noisier, shaken: the changes a camera sees) that should not alert
    either; otherwise the (1 − ``target_far``) quantile of the frames' scores.
    """
    runs = [np.asarray(error_maps, np.float32)] if isinstance(error_maps, np.ndarray) else [np.asarray(m, np.float32) for m in error_maps]
    maps = np.concatenate(runs)
    if maps.shape[0] < 10:
        raise ValueError(f"calibration needs at least 10 held-out frames, got {maps.shape[0]}")
    if agg not in ("topk", "sumpos", "max"):
        raise ValueError(f"score aggregation must be 'topk', 'sumpos' or 'max', not {agg!r}")
    if agg == "max":
        mean, std = np.zeros(grid * grid), np.ones(grid * grid)
    else:
        cells = np.stack([cell_errors(m, grid) for m in maps])
        mean = cells.mean(0)
        std = cells.std(0)
        # Floor each cell's spread at the spread of the busiest cells. Most of a
        # scene is static, so most cells show almost no error variance in a short
        # held-out clip; dividing by that would turn the first walker to cross such
        # a cell into a huge z-score. With the floor, an ordinary walker anywhere
        # scores like an ordinary walker, while cells that are noisy all the time
        # (foliage, water) are still damped by their own larger spread.
        floor = float(np.quantile(std, 0.9))
        std = np.sqrt(std**2 + floor**2) + 1e-6
    calib = Calibration(grid, topk, ema, mean.tolist(), std.tolist(), 0.0, 1.0, 0.0, target_far,
                        int(maps.shape[0]), source or {}, agg)
    scorer = StreamingScorer(calib)

    def raw_runs(seqs) -> list[np.ndarray]:
        out = []
        for run in seqs:
            scorer.reset()
            out.append(np.array([scorer.raw(m) for m in run]))
        return out

    clean = raw_runs(runs)
    raw = np.concatenate(clean)
    calib.score_mean = float(raw.mean())
    calib.score_std = float(raw.std() + 1e-6)
    z = (raw - calib.score_mean) / calib.score_std
    if alerts_per_hour is None:
        calib.threshold = float(np.quantile(z, 1.0 - target_far))
        return calib
    if not fps:
        raise ValueError("an alert budget needs the footage's frame rate (fps)")
    from edge_vad.scoring.budget import fit_threshold

    extra = raw_runs([np.asarray(m, np.float32) for m in threshold_maps or []])
    zruns = [(r - calib.score_mean) / calib.score_std for r in clean + extra]
    fit = fit_threshold(zruns, fps, alerts_per_hour, min_frames=min_frames, end_frames=end_frames)
    calib.threshold, calib.alerts_per_hour, calib.threshold_fit = fit.threshold, alerts_per_hour, fit.to_dict()
    return calib
