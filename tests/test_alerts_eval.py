"""Event-level evaluation, alert-budget thresholds and frame conditioning: what a user receives, measured."""

from __future__ import annotations

import numpy as np
import pytest

from edge_vad.evaluation.alerts import (Event, Policy, alarm_share, attribute, events_from_scores, soak_outcome,
                                        summarize)
from edge_vad.scoring.budget import cluster_peaks, fit_gpd, fit_threshold, sustained


def _ar(n: int, seed: int, rho: float = 0.5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x, e = np.zeros(n), rng.standard_normal(n)
    for i in range(1, n):
        x[i] = rho * x[i - 1] + e[i]
    return x * np.sqrt(1 - rho * rho)


def test_events_follow_the_daemons_tracker():
    """Three frames over the threshold open an event (at the third), five under 90 % of it close it;
    NaN (warming up) breaks a run."""
    s = np.array([0, 5, 5, np.nan, 5, 5, 5, 5, 4.6, 1, 1, 1, 1, 1, 0, 5, 5, 5], float)
    ev = events_from_scores(s, 5.0)
    assert [(e.start, e.opened, e.end) for e in ev] == [(4, 6, 9), (15, 17, None)]
    assert alarm_share(ev, len(s)) == pytest.approx((5 + 3) / len(s))
    assert events_from_scores(s, 5.0, Policy(min_frames=4))[0].opened == 7


def test_an_anomaly_causes_an_event_only_if_its_counterfactual_raises_none_there():
    anomalies = [{"kind": "vehicle", "first_frame": 10, "last_frame": 20},
                 {"kind": "bike", "first_frame": 40, "last_frame": 50},
                 {"kind": "running", "first_frame": 70, "last_frame": 80},
                 {"kind": "left_object", "first_frame": 100, "last_frame": 110}]
    events = [Event(12, 14, 25, 9.0), Event(41, 43, 55, 9.0), Event(60, 62, 90, 9.0)]
    twin = [Event(45, 47, 52, 6.0)]  # busy normal traffic: it would have fired anyway
    out = attribute(anomalies, events, twin, fps=10.0)
    assert [o.caused for o in out] == [True, False, False, False]
    assert out[0].delay_s == pytest.approx(0.4)
    assert [o.why for o in out[1:]] == ["an event started there without it too", "already in alarm",
                                        "no event started inside"]


def test_false_events_per_hour_on_normal_footage():
    s = np.zeros(3600)
    s[100:110] = 10
    s[2000:2004] = 10
    soak = soak_outcome("clean", s, 5.0, fps=10.0)
    assert soak.events == 2 and soak.per_hour == pytest.approx(20.0)
    summary = summarize({"moving": []}, [soak])
    assert summary["false_events_unperturbed"] == 2 and summary["false_events_per_hour_all"] == pytest.approx(20.0)


def test_sustained_level_and_cluster_peaks():
    s = np.array([0, 3, 4, 5, 1, 0, 0, 0, 0, 0, 0, 2, 6, 6, 6, 0], float)
    m = sustained(s, 3)
    assert m[1] == 3 and m[12] == 6 and np.isnan(m[-1])
    assert cluster_peaks([s], u=1.5, k=3, gap=5) == [3.0, 6.0]


def test_gpd_fit_recovers_an_exponential_tail():
    xi, sigma = fit_gpd(np.random.default_rng(0).exponential(2.0, 2000))
    assert abs(xi) < 0.05 and sigma == pytest.approx(2.0, rel=0.1)


@pytest.mark.parametrize("minutes,budget", [(2, 1.0), (10, 1.0), (10, 6.0)])
def test_budget_threshold_keeps_the_false_event_rate_within_the_budget(minutes, budget):
    """Fitted on minutes of normal scores, the threshold holds on 20 hours of the same process: the
    rate the tracker shows there is within the budget (the fit errs towards fewer alerts)."""
    from edge_vad.scoring.budget import _events

    fit = fit_threshold([_ar(minutes * 600, seed=minutes)], fps=10.0, alerts_per_hour=budget)
    long = _ar(20 * 36000, seed=99)
    rate = _events(long, fit.threshold, 3, 5, True) / 20.0
    assert rate <= budget
    assert fit.method == "tail fit" and fit.minutes == pytest.approx(minutes)
    lo, hi = fit.rate_interval
    assert lo <= budget <= hi * 1.5  # the interval says how uncertain a short fit is
    # Less footage, less certainty: a higher threshold for the same budget than with an hour of it.
    assert fit_threshold([_ar(36000, seed=5)], 10.0, budget).threshold <= fit.threshold + 0.5


def test_budget_refuses_nonsense():
    with pytest.raises(ValueError, match="positive"):
        fit_threshold([np.zeros(100)], 10.0, 0.0)
    with pytest.raises(ValueError, match="at least 10"):
        fit_threshold([np.full(5, 1.0)], 10.0, 1.0)


# ------------------------------------------------------------ conditioning


@pytest.fixture(scope="module")
def frames():
    from helpers import need_vtest

    from edge_vad.data.frames import read_frames

    return list(read_frames(need_vtest(), 0, 60))


def _flicker(frames) -> float:
    return float(np.mean([np.abs(b.astype(np.float32) - a.astype(np.float32)).mean() for a, b in zip(frames[5:-1], frames[6:])]))


def test_conditioning_undoes_shake_and_light_but_leaves_a_still_camera_alone(frames):
    from edge_vad.data.conditioning import FrameConditioner
    from edge_vad.data.perturb import apply_variant

    def run(fs):
        c = FrameConditioner()
        return [c(f) for f in fs]

    clean = run(frames)
    assert sum(o.image is f for o, f in zip(clean, frames)) >= 0.8 * len(frames)  # nothing to undo: same arrays
    shaken = apply_variant(frames, "shake")
    assert _flicker(shaken) > 3 * _flicker(frames)
    assert _flicker([o.image for o in run(shaken)]) < 1.5 * _flicker(frames)
    dusk = run(apply_variant(frames, "dusk"))
    assert dusk[-1].gain < 0.55 and abs(dusk[-1].image.mean() - dusk[1].image.mean()) < 3


def test_a_change_of_the_whole_scene_resettles_instead_of_alerting(frames):
    import cv2

    from edge_vad.data.conditioning import FrameConditioner

    c = FrameConditioner()
    for f in frames[:10]:
        assert not c(f).resettle
    moved = cv2.flip(frames[10], 1)  # the camera now sees something else entirely
    assert c(moved).resettle
    assert not c(cv2.flip(frames[11], 1)).resettle  # and settles on it


def test_a_bundle_is_recalibrated_to_a_budget_without_its_checkpoint(tmp_path):
    from helpers import REPO, need_vtest

    from edge_vad.errors import EdgeVadError
    from edge_vad.runtime.bundle.loader import load_bundle
    from edge_vad.runtime.bundle.recalibrate import recalibrate_bundle

    shipped = REPO / "edge_vad/assets/bundles/stconvlstm-edge"
    out = tmp_path / "cal"
    calib = recalibrate_bundle(shipped, out, data=need_vtest(), frames="120:200", alerts_per_hour=2.0, augment=False,
                               log=lambda *a: None)
    b = load_bundle(out)  # checksums verified
    assert b.id.startswith(load_bundle(shipped).id + ".cal") and b.manifest.score.calibration == calib.to_dict()
    assert calib.alerts_per_hour == 2.0 and calib.threshold_fit["minutes"] > 0
    assert calib.source["frames"] == [[120, 200]]
    with pytest.raises(EdgeVadError, match="too few to calibrate"):
        recalibrate_bundle(shipped, tmp_path / "short", data=need_vtest(), frames="120:150", augment=False,
                           log=lambda *a: None)
    assert not (tmp_path / "short").exists()
