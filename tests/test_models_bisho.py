"""bisho specifics: the window/target arithmetic, the ablation switches, SHO and attention."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from edge_vad.models import get_model  # noqa: E402
from edge_vad.models.layers.sho_convlstm import SHOConvLSTMCell  # noqa: E402
from helpers import step_maps  # noqa: E402


def _build(**over):
    entry = get_model("bisho")
    # The paper's temporal design (T = 9, n = 7, 5th prediction, both directions over a window) on the tiny network.
    cfg = {**entry.preset("edge"), **entry.test_overrides, "T": 9, "n": 7, "score_index": 5, "bidirectional": True,
           "stream": "window", **over}
    torch.manual_seed(0)
    return entry.torch_side().build(cfg).eval()


def test_windows_follow_the_paper_T9_n7_fifth_prediction():
    m = _build()
    assert m.train_clip_length == 9 + 7  # targets X_8..X_16 of inputs X_1..X_9
    assert m.clip_length == 5 + 7  # the 5th prediction is X_12, 3 frames after the last input


def test_score_uses_the_inputs_and_the_12th_frame_only():
    m = _build()
    clip = torch.rand(1, 12, 1, 32, 32) * 2 - 1
    with torch.no_grad():
        base = m.score_windows(clip)["error"]
        between = clip.clone()
        between[:, 9:11] = 1.0  # X_10, X_11 are neither inputs nor the target
        assert torch.allclose(m.score_windows(between)["error"], base)
        target = clip.clone()
        target[:, 11] = 1.0
        assert not torch.allclose(m.score_windows(target)["error"], base)


def test_scoring_shortcut_equals_the_full_prediction():
    m = _build()
    clip = torch.rand(2, 9, 1, 32, 32) * 2 - 1
    with torch.no_grad():
        full = m(clip)
        only = m(clip, upto=5)
    assert full.shape == (2, 9, 1, 32, 32)
    torch.testing.assert_close(only[:, 0], full[:, 4])


@pytest.mark.parametrize("switch", ["bidirectional", "sho", "attention"])
def test_ablation_switches_remove_their_component(switch):
    full, ablated = _build(), _build(**{switch: False})
    names = {n for n, _ in ablated.named_modules()}
    if switch == "bidirectional":
        assert ablated.bwd is None and full.bwd is not None
        assert ablated.head.in_channels * 2 == full.head.in_channels
    if switch == "sho":
        assert not any(isinstance(mod, SHOConvLSTMCell) for mod in ablated.modules())
        assert sum(isinstance(mod, SHOConvLSTMCell) for mod in full.modules()) == 4  # 2 levels × 2 directions
    if switch == "attention":
        assert not any(".att." in n for n in names)
    assert sum(p.numel() for p in ablated.parameters()) < sum(p.numel() for p in full.parameters())
    loss, _ = ablated.loss(torch.rand(2, 16, 1, 32, 32) * 2 - 1)
    loss.backward()  # every variant trains


def test_sho_cell_sees_the_encoder_state():
    torch.manual_seed(0)
    cell = SHOConvLSTMCell(3, 5, 4, (6, 6), kernel=5)
    x, h, c = torch.rand(2, 3, 6, 6), torch.rand(2, 4, 6, 6), torch.rand(2, 4, 6, 6)
    h1, c1 = cell(x, torch.zeros(2, 5, 6, 6), h, c)
    h2, c2 = cell(x, torch.ones(2, 5, 6, 6), h, c)
    assert h1.shape == (2, 4, 6, 6) and c1.shape == (2, 4, 6, 6)
    assert not torch.allclose(h1, h2)


def test_attention_mask_is_min_max_normalised_per_map():
    from edge_vad.models.bisho.model import MinMaxAttention

    torch.manual_seed(0)
    att = MinMaxAttention(4)
    a = att(torch.rand(2, 4, 8, 8), torch.rand(2, 4, 8, 8))
    torch.testing.assert_close(a.amin(dim=(2, 3)), torch.zeros(2, 4), atol=1e-6, rtol=0)
    torch.testing.assert_close(a.amax(dim=(2, 3)), torch.ones(2, 4), atol=1e-4, rtol=0)


# --- stream='carried': the forward AE's state runs from frame to frame ------------------------------
def _carried(**over):
    return _build(**{"T": 4, "n": 1, "score_index": 4, "bidirectional": False, "stream": "carried",
                     "sequence": 12, "residual": True, **over})


@pytest.mark.parametrize("n, residual", [(1, True), (2, False)])
@torch.no_grad()
def test_carried_step_scores_each_frame_against_the_prediction_made_n_frames_earlier(n, residual):
    m = _carried(n=n, residual=residual)
    frames = torch.rand(13, 1, 1, 32, 32) * 2 - 1
    maps = step_maps(m, frames)
    # Independently: the forward AE from its carried zero state over frames 0..t−n, its last feature
    # through the head (plus frame t−n when residual), against frame t, MAE on the [0, 1] scale.
    for t in range(m.warmup_frames, len(frames)):
        st = m.fwd.init_state(1, frames[0], carried=True)
        for k in range(t - n + 1):
            feat = m.fwd.step(frames[k], st)
        pred = torch.tanh(m.head(feat)) + (frames[t - n] if residual else 0)
        torch.testing.assert_close(maps[t], ((pred - frames[t]).abs() / 2).mean(1, keepdim=True), rtol=1e-5, atol=1e-6)
    assert m.warmup_frames == m.T + n - 1  # the scored prediction has seen a window's worth of frames


def test_carried_loss_carries_the_state_along_the_sequence():
    m = _carried().train()
    clips = (torch.rand(2, 12, 1, 32, 32) * 2 - 1).requires_grad_(True)
    loss, logs = m.loss(clips)
    loss.backward()
    assert torch.isfinite(loss) and 0 < logs["ssim"] <= 1
    # The first frame only enters the predictions through the carried state.
    assert clips.grad[:, 0].abs().sum() > 0
    assert m.train_clip_length == 12 and m.train_clip_every == m.T


@pytest.mark.parametrize("options, message", [
    ({"stream": "both"}, "stream must be 'window' or 'carried'"),
    ({"bidirectional": True}, "needs bidirectional=false"),
    ({"score_index": 2}, "score_index = T"),
    ({"sequence": 6}, "sequence must be at least"),
])
def test_carried_options_that_cannot_work_are_refused_by_name(options, message):
    from edge_vad.errors import EdgeVadError

    with pytest.raises(EdgeVadError, match=message):
        _carried(**options)


@pytest.mark.slow
def test_carried_bundle_passes_parity_and_costs_one_ae_step_of_the_windows_T(tmp_path):
    import numpy as np

    from converters import convert
    from edge_vad.benchmarking.flops import count_flops
    from converters.onnx_export import export_step
    from edge_vad.evaluation.scorers import score_bundle, score_checkpoint
    from edge_vad.training.checkpoint import load_model
    from edge_vad.training.trainer import train
    from helpers import need_vtest

    vtest, entry = need_vtest(), get_model("bisho")
    ckpt = tmp_path / "ckpt"
    train("bisho", "edge", vtest, ckpt, frames="0:240", epochs=1, threads=1, log=lambda *a: None,
          overrides={**entry.test_overrides, "T": 4, "n": 1, "score_index": 4, "bidirectional": False,
                     "stream": "carried", "sequence": 12})
    manifest = convert(ckpt, "cpu", tmp_path / "bundle", log=lambda *a: None)
    assert [s.input for s in manifest.state][-1] == "predicted" and len(manifest.state) == 14
    a = score_checkpoint(ckpt, vtest, (200, 240))
    b = score_bundle(tmp_path / "bundle", vtest, (200, 240))
    np.testing.assert_allclose(a.errors, b.errors, rtol=1e-4, equal_nan=True)

    model, _ = load_model(ckpt)
    window = entry.torch_side().build({**model.config, "stream": "window"})
    export_step(window, tmp_path / "window.onnx")
    # One AE step and the head per frame, against T = 4 AE steps for the window the paper recomputes.
    assert 0 < count_flops(tmp_path / "bundle" / "model.onnx").flops < 0.3 * count_flops(tmp_path / "window.onnx").flops
