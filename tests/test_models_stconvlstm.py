"""stconvlstm specifics: the carried-state streaming step (stream='carried')."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edge_vad.errors import EdgeVadError  # noqa: E402
from edge_vad.models import get_model  # noqa: E402
from helpers import need_vtest, step_maps  # noqa: E402

ENTRY = get_model("stconvlstm")


def _config(**options):
    config = {**ENTRY.preset("edge"), **ENTRY.test_overrides, "stream": "carried", "sequence": 12}
    config.update(options)
    return config


def _model(**options):
    torch.manual_seed(0)
    return ENTRY.torch_side().build(_config(**options)).eval()


@pytest.mark.parametrize("horizon_index, residual", [(0, True), (2, False), (-1, True)])
@torch.no_grad()
def test_carried_step_scores_each_frame_against_the_forecast_made_horizon_frames_earlier(horizon_index, residual):
    model = _model(score_horizons=[horizon_index], residual=residual, score_map="sq")
    h = model.horizon
    assert h == horizon_index % model.tau + 1
    frames = torch.rand(14, 1, 1, 67, 67)
    maps = step_maps(model, frames)
    # Independently: encode frames 0..t−h from zero state, forecast h frames, compare with frame t.
    for t in range(model.warmup_frames, len(frames)):
        enc = model.zero_state(frames[0])
        for k in range(t - h + 1):
            enc = model.encode(frames[k], enc)
        forecast = model.forecast(enc, frames[t - h], h)[-1]
        torch.testing.assert_close(maps[t], (frames[t] - forecast).pow(2), rtol=1e-5, atol=1e-6)


@torch.no_grad()
def test_carried_scoring_of_a_clip_matches_the_deployed_step_after_warm_up():
    from edge_vad.training.inference import score_frames

    model = _model()
    frames = np.random.default_rng(0).random((16, 1, 67, 67), dtype=np.float32)
    errors, maps = score_frames(model, frames, batch=4)
    assert len(errors) == len(maps) == len(frames) - model.warmup_frames
    # A window model would give the same count; a carried one must not read windows.
    window = _model(stream="window")
    assert len(score_frames(window, frames)[0]) == len(frames) - window.warmup_frames


def test_carried_loss_trains_every_position_of_a_sequence():
    model = _model()
    model.train()
    clips = torch.rand(2, 12, 1, 67, 67)
    loss, logs = model.loss(clips)
    loss.backward()
    assert torch.isfinite(loss) and logs["mse"] > 0
    # The encoder's gradient reaches the first frame: the state is carried, not restarted.
    assert model.conv1.weight.grad.abs().sum() > 0
    clips.requires_grad_(True)
    model.zero_grad()
    model.loss(clips)[0].backward()
    assert clips.grad[:, 0].abs().sum() > 0


@pytest.mark.parametrize("options, message", [
    ({"stream": "both"}, "stream must be 'window' or 'carried'"),
    ({"mode": "reconstruction"}, "needs mode='prediction'"),
    ({"score_horizons": [0, 1]}, "names one predicted frame"),
    ({"sequence": 6}, "sequence must be at least"),
])
def test_carried_options_that_cannot_work_are_refused_by_name(options, message):
    with pytest.raises(EdgeVadError, match=message):
        ENTRY.torch_side().build(_config(**options))


@pytest.fixture(scope="module")
def carried_ckpt(tmp_path_factory):
    from edge_vad.training.trainer import train

    ckpt = tmp_path_factory.mktemp("carried") / "ckpt"
    train("stconvlstm", "edge", need_vtest(), ckpt, frames="0:240", epochs=1, threads=1, log=lambda *a: None,
          overrides={**ENTRY.test_overrides, "stream": "carried", "sequence": 12, "residual": True})
    return ckpt


@pytest.mark.slow
def test_carried_bundle_passes_parity_and_costs_a_fraction_of_the_window(carried_ckpt, tmp_path):
    from converters import convert
    from edge_vad.benchmarking.flops import count_flops
    from converters.onnx_export import export_step
    from edge_vad.evaluation.scorers import score_bundle, score_checkpoint
    from edge_vad.training.checkpoint import load_model

    vtest = need_vtest()
    ckpt = carried_ckpt
    manifest = convert(ckpt, "cpu", tmp_path / "bundle", log=lambda *a: None)
    assert [s.input for s in manifest.state] == ["h1", "c1", "h2", "c2", "h3", "c3", "predicted"]
    assert manifest.warmup_frames == 5

    a = score_checkpoint(ckpt, vtest, (200, 240))
    b = score_bundle(tmp_path / "bundle", vtest, (200, 240))
    np.testing.assert_allclose(a.errors, b.errors, rtol=1e-4, equal_nan=True)
    np.testing.assert_allclose(a.stream, b.stream, atol=1e-3, equal_nan=True)

    model, _ = load_model(ckpt)
    window = ENTRY.torch_side().build({**model.config, "stream": "window"})
    export_step(window, tmp_path / "window.onnx")
    step = count_flops(tmp_path / "bundle" / "model.onnx").flops
    # One encoder and one forecaster step, against τ of each for the paper's window.
    assert 0 < step < 0.3 * count_flops(tmp_path / "window.onnx").flops


@pytest.mark.slow
def test_calibrate_changes_score_options_without_retraining_and_leaves_a_refused_value_unwritten(carried_ckpt, tmp_path):
    import json
    import shutil

    from edge_vad.training.checkpoint import load_model
    from edge_vad.training.trainer import calibrate_checkpoint

    ckpt = tmp_path / "ckpt"
    shutil.copytree(carried_ckpt, ckpt)
    calib = calibrate_checkpoint(ckpt, overrides={"score_horizons": [1], "score_grid": 2}, log=lambda *a: None)
    model, info = load_model(ckpt)
    assert info["config"]["score_horizons"] == [1] and model.horizon == 2 and calib.grid == 2
    # Three held-out blocks of 20 frames, each warming up for τ + horizon − 1 = 6.
    assert calib.frames == 3 * (20 - 6)
    assert [s.shape for s in model.state_specs()][-1] == (2, 67, 67)

    before = (ckpt / "config.json").read_bytes(), (ckpt / "calibration.json").read_bytes()
    with pytest.raises(EdgeVadError, match="names one predicted frame"):
        calibrate_checkpoint(ckpt, overrides={"score_horizons": [0, 1]}, log=lambda *a: None)
    with pytest.raises(EdgeVadError, match="needs 'edge-vad train'"):
        calibrate_checkpoint(ckpt, overrides={"residual": False}, log=lambda *a: None)
    assert ((ckpt / "config.json").read_bytes(), (ckpt / "calibration.json").read_bytes()) == before
    assert json.loads(before[0])["config"]["score_horizons"] == [1]
