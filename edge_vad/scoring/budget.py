"""Thresholds from an alert budget: false events per hour, not a frame quantile.

A user can say how many false alerts an hour they will put up with; a frame quantile says nothing
about that (events are runs of frames, and a 1/hour rate cannot be read off minutes of footage).
So the threshold is fitted on the *events* the tracker would raise on normal footage:

1. Each frame's **sustained level** ``m(t) = min(s(t) … s(t+k-1))`` (k = the tracker's ``min_frames``)
   is the highest threshold at which an event would open at t.
2. Runs of ``m`` above a base level ``u`` (joined across gaps shorter than the tracker's
   ``end_frames``) are **clusters**; each one's peak is the highest threshold at which it would have
   raised an event. Above ``u``, the number of events at threshold τ is the number of peaks above τ.
3. The peaks' excesses over ``u`` get a **generalised Pareto** tail (peaks over threshold, as in
   SPOT, Siffer et al. KDD 2017), fitted by probability-weighted moments (Hosking & Wallis 1987:
   closed form, stable on tens of peaks). The event rate at τ is then
   ``rate(u) · (1 + ξ (τ − u) / σ) ^ (−1/ξ)``, solved for the budget.
4. The threshold is never below what the footage itself shows: with the tracker run on it, the
   empirical rate must also be within the budget (which, on short footage, means no event at all).

The fit reports what the footage supports: minutes, number of peaks, the parameters, and a
bootstrap interval (over clusters and their count) for the event rate at the chosen threshold.
Numpy only: the runtime fits it on a device (``edge-vad calibrate BUNDLE``, learning on site).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

#: the tail is fitted on the highest quarter of the cluster peaks
TAIL_SHARE = 0.25
MIN_PEAKS = 8
MAX_PEAKS = 40
# Shape clamped: tens of peaks cannot tell a heavier or a shorter tail apart, and a bounded tail (ξ < 0)
# extrapolated from them under-states the rate of rare peaks; ξ ≥ −0.1 errs towards fewer false alerts.
XI_RANGE = (-0.1, 0.5)
BOOTSTRAP = 300


def sustained(scores: np.ndarray, k: int) -> np.ndarray:
    """m(t) = min of s(t..t+k-1); NaN where the window holds a NaN (warming up) or runs off the end."""
    s = np.asarray(scores, np.float64)
    n = len(s)
    out = np.full(n, np.nan)
    if n < k:
        return out
    windows = np.lib.stride_tricks.sliding_window_view(s, k)
    with np.errstate(invalid="ignore"):
        out[: n - k + 1] = np.where(np.isnan(windows).any(1), np.nan, windows.min(1))
    return out


def cluster_peaks(runs: list[np.ndarray], u: float, k: int, gap: int) -> list[float]:
    """Peaks of the clusters of sustained level above ``u`` (joined across gaps under ``gap`` frames)."""
    peaks = []
    for run in runs:
        m = sustained(run, k)
        above = np.flatnonzero(np.nan_to_num(m, nan=-np.inf) > u)
        if not len(above):
            continue
        start = 0
        for i in range(1, len(above) + 1):
            if i == len(above) or above[i] - above[i - 1] > gap:
                peaks.append(float(np.nanmax(m[above[start]:above[i - 1] + 1])))
                start = i
    return peaks


def fit_gpd(excess: np.ndarray) -> tuple[float, float]:
    """(ξ, σ) of a generalised Pareto by probability-weighted moments (Hosking & Wallis 1987)."""
    y = np.sort(np.asarray(excess, np.float64))
    n = len(y)
    a0 = y.mean()
    a1 = float(np.sum((n - 1 - np.arange(n)) / max(n - 1, 1) * y) / n)
    denom = a0 - 2 * a1
    if n < 2 or denom <= 1e-12:
        return 0.0, max(a0, 1e-6)
    k = a0 / denom - 2.0  # Hosking's k = -ξ
    sigma = 2.0 * a0 * a1 / denom
    xi = float(np.clip(-k, *XI_RANGE))
    if xi != -k:  # refit σ for the clamped shape from the mean: E[y] = σ / (1 − ξ)
        sigma = a0 * (1.0 - xi)
    return xi, max(float(sigma), 1e-6)


def tail_share(tau: float, u: float, xi: float, sigma: float) -> float:
    """P(peak > τ | peak > u) under the fitted tail."""
    z = max(tau - u, 0.0) / sigma
    if abs(xi) < 1e-6:
        return math.exp(-z)
    base = 1.0 + xi * z
    return 0.0 if base <= 0 else base ** (-1.0 / xi)


def tail_threshold(rate_u: float, budget: float, u: float, xi: float, sigma: float) -> float:
    """τ with rate(u) · tail_share(τ) = budget."""
    if rate_u <= budget:
        return u
    ratio = rate_u / budget
    if abs(xi) < 1e-6:
        return u + sigma * math.log(ratio)
    return u + sigma / xi * (ratio ** xi - 1.0)


@dataclass
class BudgetFit:
    alerts_per_hour: float
    threshold: float
    minutes: float  # normal footage the fit saw
    method: str  # "tail fit" or "empirical" (footage long enough to read the rate off it)
    base: float | None = None  # u
    peaks: int = 0  # clusters above u
    xi: float | None = None
    sigma: float | None = None
    rate_interval: list[float] = field(default_factory=list)  # 90 % bootstrap interval, events/hour at threshold
    empirical_events: int = 0  # events the tracker raises on the footage at the threshold
    note: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        head = (f"threshold {self.threshold:.2f} for ≤ {self.alerts_per_hour:g} false event(s)/hour, fitted on "
                f"{self.minutes:.1f} min of normal footage")
        if self.method == "tail fit":
            lo, hi = self.rate_interval or (float("nan"), float("nan"))
            rate = lambda v: "<0.01" if v < 0.01 else f"{v:.2g}"  # noqa: E731
            head += (f" ({self.peaks} score peaks above {self.base:.2f}, tail ξ={self.xi:.2f} σ={self.sigma:.2f}; "
                     f"90 % interval of the rate there: {rate(lo)}–{rate(hi)}/hour)")
        return head + (f"; {self.note}" if self.note else "")


def _events(run: np.ndarray, tau: float, k: int, end_frames: int, hysteresis: float) -> int:
    """Events the tracker opens on ``run`` at threshold ``tau`` (its rules, without the bookkeeping)."""
    from edge_vad.runtime.alerts.events import default_end_threshold

    end = default_end_threshold(tau) if hysteresis else tau
    n, high, low, active = 0, 0, 0, False
    for s in run:
        if not active:
            high = high + 1 if s >= tau else 0  # NaN compares False: it breaks a run
            if high >= k:
                n, active, high, low = n + 1, True, 0, 0
        elif not math.isnan(s):
            low = low + 1 if s < end else 0
            if low >= end_frames:
                active = False
    return n


def fit_threshold(runs: list[np.ndarray], fps: float, alerts_per_hour: float = 1.0, min_frames: int = 3,
                  end_frames: int = 5, seed: int = 0) -> BudgetFit:
    """The threshold on these normal score runs (each a continuous stretch of footage) that keeps the
    tracker within ``alerts_per_hour`` false events (module docstring)."""
    if alerts_per_hour <= 0:
        raise ValueError(f"alerts_per_hour must be positive, got {alerts_per_hour}")
    runs = [np.asarray(r, np.float64) for r in runs if len(r)]
    frames = sum(int(np.sum(~np.isnan(r))) for r in runs)
    if frames < 10:
        raise ValueError(f"a threshold needs at least 10 scored normal frames, got {frames}")
    hours = frames / fps / 3600.0
    levels = np.concatenate([sustained(r, min_frames) for r in runs])
    levels = levels[~np.isnan(levels)]
    # Base level: the clusters over the median level, then u just below the highest TAIL_SHARE of their
    # peaks (at least MIN_PEAKS, at most MAX_PEAKS): the tail is fitted on the peaks that matter.
    low = float(np.quantile(levels, 0.5))
    all_peaks = sorted(cluster_peaks(runs, low, min_frames, end_frames), reverse=True)
    keep = int(np.clip(round(TAIL_SHARE * len(all_peaks)), MIN_PEAKS, MAX_PEAKS))
    if len(all_peaks) > keep:
        u = 0.5 * (all_peaks[keep - 1] + all_peaks[keep])
        peaks = all_peaks[:keep]
    else:
        u, peaks = low, all_peaks
    rate_u = len(peaks) / hours
    empirical = lambda tau: sum(_events(r, tau, min_frames, end_frames, True) for r in runs)  # noqa: E731
    # The least threshold the footage itself allows: the budget times its length, in whole events.
    allowed = math.floor(alerts_per_hour * hours)
    top = max(peaks) if peaks else float(np.max(levels))
    floor = u
    for tau in sorted({*peaks, top}):
        if empirical(tau) <= allowed:
            floor = tau
            break
    else:
        floor = top
    if allowed == 0:
        floor = max(floor, np.nextafter(top, np.inf))
    if len(peaks) < 2:
        tau = max(floor, top + 1.0)
        return BudgetFit(alerts_per_hour, tau, hours * 60, "empirical", u, len(peaks), empirical_events=empirical(tau),
                         note="too few score peaks for a tail fit: set one unit above the highest peak")
    xi, sigma = fit_gpd(np.asarray(peaks) - u)
    tau_tail = tail_threshold(rate_u, alerts_per_hour, u, xi, sigma)
    tau = max(tau_tail, floor)
    # Bootstrap: clusters resampled, their count Poisson: the spread of the rate at the chosen threshold.
    rng = np.random.default_rng(seed)
    rates = []
    for _ in range(BOOTSTRAP):
        n = max(2, rng.poisson(len(peaks)))
        sample = rng.choice(peaks, size=n, replace=True)
        bx, bs = fit_gpd(sample - u)
        rates.append(n / hours * tail_share(tau, u, bx, bs))
    lo, hi = (float(v) for v in np.quantile(rates, [0.05, 0.95]))
    note = "" if tau == tau_tail else "raised to what the footage itself shows"
    return BudgetFit(alerts_per_hour, float(tau), hours * 60, "tail fit", u, len(peaks), xi, sigma, [lo, hi],
                     empirical(tau), note)
