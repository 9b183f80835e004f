import numpy as np
import pytest

from edge_vad.scoring.metrics import auc, eer, regularity, roc_curve
from edge_vad.scoring.streaming import StreamingScorer, fit_calibration


def test_auc_matches_sklearn_with_ties():
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500)
    s = np.round(rng.normal(size=500) + y, 1)  # rounding makes ties
    assert auc(y, s) == pytest.approx(sk.roc_auc_score(y, s), abs=1e-12)
    fpr, tpr, _ = roc_curve(y, s)
    fpr2, tpr2, _ = sk.roc_curve(y, s, drop_intermediate=False)
    np.testing.assert_allclose(fpr, fpr2)
    np.testing.assert_allclose(tpr, tpr2)


def test_eer_of_perfect_and_inverted_scores():
    y = np.array([0, 0, 0, 1, 1])
    assert eer(y, np.array([0.1, 0.2, 0.3, 0.8, 0.9])) == 0.0
    assert eer(y, -np.array([0.1, 0.2, 0.3, 0.8, 0.9])) == 1.0


def test_roc_needs_both_classes():
    with pytest.raises(ValueError):
        auc(np.zeros(5), np.arange(5))


def test_regularity_is_one_minus_minmax():
    np.testing.assert_allclose(regularity(np.array([2.0, 4.0, 3.0])), [1.0, 0.0, 0.5])


def test_streaming_score_flags_a_local_anomaly_the_mean_misses():
    rng = np.random.default_rng(1)
    normal = rng.gamma(2.0, 1.0, size=(60, 48, 48)).astype(np.float32)
    calib = fit_calibration(normal, grid=12, topk=2, ema=0.0, target_far=0.02)
    scorer = StreamingScorer(calib)
    quiet = rng.gamma(2.0, 1.0, size=(48, 48)).astype(np.float32)
    local = quiet.copy()
    local[:8, :8] += 12.0  # one corner goes wrong; the frame mean barely moves
    assert scorer(quiet) < calib.threshold
    scorer.reset()
    assert scorer(local) > calib.threshold
    # Threshold reads as a quantile of the held-out normal scores.
    scorer.reset()
    held = np.array([scorer(m) for m in normal])
    assert (held > calib.threshold).mean() <= 0.05


def test_too_little_calibration_footage_for_the_grid_is_called_out():
    from edge_vad.scoring.streaming import calibration_warning, fit_calibration

    rng = np.random.default_rng(0)
    maps = rng.random((120, 48, 48)).astype(np.float32)
    fine = fit_calibration(maps, grid=12, topk=2, ema=0.5)
    assert "120 normal frames for 144 grid cells" in calibration_warning(fine)
    assert "edge-vad calibrate CKPT --data" in calibration_warning(fine)
    assert calibration_warning(fit_calibration(maps, grid=3, topk=2, ema=0.5)) is None
