"""HF2-VAD specifics: MemAE hard shrinkage and entropy, in-graph cube cropping, object scores."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from edge_vad.models import get_model  # noqa: E402


def _model(**over):
    entry = get_model("hf2vad")
    cfg = {**entry.preset("edge"), **entry.test_overrides, **over}
    m = entry.torch_side().build(cfg)
    return m.eval(), cfg


def test_hard_shrinkage_zeroes_small_weights_and_renormalises():
    from edge_vad.models.hf2vad.model import entropy, hard_shrink

    att = torch.tensor([[0.5, 0.3, 0.15, 0.05], [0.25, 0.25, 0.25, 0.25]])
    out = hard_shrink(att, 0.1)
    assert out[0, 3] == 0 and torch.all(out[0, :3] > 0)
    torch.testing.assert_close(out.sum(1), torch.ones(2))
    # A weight above λ keeps its rank order; uniform weights above λ stay uniform.
    assert out[0, 0] > out[0, 1] > out[0, 2]
    torch.testing.assert_close(out[1], att[1])
    # Entropy: 0 for one-hot, log N for uniform.
    assert float(entropy(torch.tensor([[1.0, 0, 0, 0]]))) == pytest.approx(0.0, abs=1e-6)
    assert float(entropy(att[1:])) == pytest.approx(float(torch.log(torch.tensor(4.0))), rel=1e-5)


def test_memory_reads_are_sparse_combinations_of_slots():
    from edge_vad.models.hf2vad.model import Memory

    mem = Memory(slots=50, dim=16, shrink=1 / 50)
    x = torch.randn(6, 4, 2, 2) * 3
    out, att = mem(x)
    assert out.shape == x.shape
    assert (att == 0).any(), "hard shrinkage must switch slots off"
    torch.testing.assert_close(out.flatten(1), att @ mem.weight)


def test_entropy_loss_drives_training_in_stage_one():
    m, cfg = _model()
    loss, logs = m.loss(_clip_with_boxes(m, cfg), stage=1)
    assert logs["entropy"] > 0 and torch.isfinite(loss)
    # The loss is flow MSE + 0.0002 · entropy exactly.
    assert float(loss.detach()) == pytest.approx(logs["flow_mse"] + cfg["entropy_weight"] * logs["entropy"], rel=1e-4)


def _clip_with_boxes(m, cfg, boxes=((5, 10, 20, 30), (40, 2, 60, 12))):
    h, w, k = cfg["height"], cfg["width"], cfg["max_objects"]
    gen = torch.Generator().manual_seed(0)
    clip = torch.zeros(1, m.clip_length, m.input_spec().channels, h, w)
    clip[:, :, :3] = torch.rand(1, m.clip_length, 3, h, w, generator=gen)
    for i, (x0, y0, x1, y1) in enumerate(boxes):
        clip[0, -1, 3 + i, y0 : y1 + 1, x0 : x1 + 1] = 1
    return clip


def test_cubes_are_the_boxes_of_the_last_frame_over_all_frames():
    m, cfg = _model(cube=32)
    clip = _clip_with_boxes(m, cfg)
    # Frame i's appearance holds the value i everywhere: each cube frame must read it back.
    for i in range(m.clip_length):
        clip[0, i, 0] = float(i)
    cubes, valid, index, masks = m.objects(clip)
    # Only the slots holding an object are cut.
    assert valid.tolist() == [True, True] and index.tolist() == [0, 1] and masks.shape[1] == 2
    assert cubes.shape == (2, m.clip_length, 3, 32, 32)
    for i in range(m.clip_length):
        torch.testing.assert_close(cubes[:, i, 0], torch.full((2, 32, 32), float(i)))
    # Content: a horizontal ramp cropped at box x0..x1 (pixel centres 5..20) spans those
    # columns edge to edge: samples at pixel centres of a 32-wide grid over [4.5, 20.5].
    ramp = torch.arange(cfg["width"], dtype=torch.float32).expand(cfg["height"], -1)
    clip[0, :, 1] = ramp
    cubes, _, _, _ = m.objects(clip)
    row = cubes[0, -1, 1, 16]
    assert float(row.min()) == pytest.approx(4.75) and float(row.max()) == pytest.approx(20.25)


@torch.no_grad()
def test_object_scores_are_painted_into_their_boxes():
    m, cfg = _model()
    clip = _clip_with_boxes(m, cfg)
    out = m.score_windows(clip)
    emap = out["error_map"][0, 0]
    assert emap.shape == (cfg["height"], cfg["width"])
    outside = torch.ones_like(emap, dtype=torch.bool)
    outside[10:31, 5:21] = False
    outside[2:13, 40:61] = False
    assert float(emap[outside].abs().max()) == 0.0
    assert float(emap.max()) > 0
    # No objects: the score of zero error, and an empty map.
    empty = clip.clone()
    empty[:, -1, 3:] = 0
    out = m.score_windows(empty)
    mu_of, sd_of, mu_fr, sd_fr = m.stats
    base = cfg["w_flow"] * -mu_of / sd_of + cfg["w_frame"] * -mu_fr / sd_fr
    assert float(out["error"][0]) == pytest.approx(float(base))
    assert float(out["error_map"].abs().max()) == 0.0


def test_edge_preset_fits_a_small_device():
    entry = get_model("hf2vad")
    edge = entry.preset("edge")
    m = entry.torch_side().build(edge)
    params = sum(p.numel() for p in m.parameters())
    assert edge["mem_slots"] < 2000 and params * 4 < 10e6, "edge weights must ship in ≤ 10 MB"
    paper = entry.preset("paper")
    assert paper["mem_slots"] == 2000 and paper["features_root"] == 32


@torch.no_grad()
def test_empty_slots_are_skipped_without_changing_scores():
    m, cfg = _model()
    clip = _clip_with_boxes(m, cfg)
    k = cfg["max_objects"]
    # The same two objects in slots 0 and k−1, with empty slots between them.
    gapped = clip.clone()
    gapped[0, -1, 3 + k - 1] = clip[0, -1, 4]
    gapped[0, -1, 4] = 0
    cubes, valid, _, _ = m.objects(gapped)
    assert cubes.shape[0] == 2 and valid.tolist() == [True, True]
    a, b = m.score_windows(clip), m.score_windows(gapped)
    torch.testing.assert_close(a["error"], b["error"])
    torch.testing.assert_close(a["error_map"], b["error_map"])
    # A batch whose clips have different object counts scores each clip as it scores alone.
    one = clip.clone()
    one[0, -1, 4] = 0
    both = m.score_windows(torch.cat([clip, one]))
    alone = m.score_windows(one)
    # Cameras batched into one call cut their own objects only: 2 + 1 cubes, not 2 × 2, and a
    # clip with none costs nothing beyond the one filler cube that keeps the tensors non-empty.
    cubes, valid, index, _ = m.objects(torch.cat([clip, one]))
    assert cubes.shape[0] == 3 and valid.tolist() == [True, True, True] and index.tolist() == [0, 1, 2]
    empty = clip.clone()
    empty[0, -1, 3:] = 0
    cubes, valid, _, _ = m.objects(torch.cat([empty, one, empty]))
    assert cubes.shape[0] == 2 and valid.tolist() == [False, True]
    torch.testing.assert_close(m.score_windows(torch.cat([empty, one]))["error"][1:], alone["error"])
    torch.testing.assert_close(both["error"], torch.cat([a["error"], alone["error"]]))
    torch.testing.assert_close(both["error_map"], torch.cat([a["error_map"], alone["error_map"]]))


@torch.no_grad()
def test_step_carries_appearance_and_flow_only_and_scores_the_sliding_window():
    m, cfg = _model()
    step = m.step_module().eval()
    (state_spec,) = m.state_specs()
    assert state_spec.shape == (m.past * 3, cfg["height"], cfg["width"]), "box masks of past frames are not state"
    gen = torch.Generator().manual_seed(1)
    frames = torch.zeros(8, m.input_spec().channels, cfg["height"], cfg["width"])
    frames[:, :3] = torch.rand(8, 3, cfg["height"], cfg["width"], generator=gen)
    for i in range(8):  # a box that moves, and a second one on some frames
        frames[i, 3, 10 : 30, 5 + 2 * i : 25 + 2 * i] = 1
        if i % 2:
            frames[i, 4, 40 : 55, 50 : 70] = 1
    state = torch.zeros(1, *state_spec.shape)
    for i in range(8):
        error, error_map, state = step(frames[i : i + 1], state)
        if i >= m.clip_length - 1:
            ref = m.score_windows(frames[i - m.clip_length + 1 : i + 1][None])
            torch.testing.assert_close(error, ref["error"])
            torch.testing.assert_close(error_map, ref["error_map"])
