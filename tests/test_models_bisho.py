"""bisho specifics: the window/target arithmetic, the ablation switches, SHO and attention."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from edge_vad.models import get_model  # noqa: E402
from edge_vad.models.layers.sho_convlstm import SHOConvLSTMCell  # noqa: E402


def _build(**over):
    entry = get_model("bisho")
    # The paper's temporal design (T = 9, n = 7, 5th prediction) on the tiny network.
    cfg = {**entry.preset("edge"), **entry.test_overrides, "T": 9, "n": 7, "score_index": 5, **over}
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
