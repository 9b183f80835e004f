"""protomem specifics: memory read/update/loss against the paper's equations, memory as state."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402

from edge_vad.models import get_model  # noqa: E402
from edge_vad.models.protomem import memory as mem  # noqa: E402


def _unit(*shape):
    return F.normalize(torch.randn(*shape), dim=-1)


@pytest.mark.parametrize("scope", ["all", "nearest"])
def test_update_is_eq_11_12_item_by_item(scope):
    torch.manual_seed(0)
    m, q = _unit(5, 8), _unit(2, 7, 8)
    got = mem.update(m, q, scope)
    z = q.reshape(-1, 8)
    nearest = (z @ m.t()).argmax(1)
    for j in range(5):
        d = torch.stack([(zi @ m[j]) / (zi.norm() * m[j].norm()) for zi in z])
        v = torch.exp(d) / torch.exp(d).sum()  # eq. 11: normalised over the queries
        if scope == "nearest":
            v = v * (nearest == j)
        new = m[j] + (v[:, None] * z).sum(0)  # eq. 12
        torch.testing.assert_close(got[j], new / new.norm())


def test_read_is_softmax_over_all_items():
    torch.manual_seed(0)
    m, q = _unit(4, 6), _unit(1, 3, 6)
    z_hat, d = mem.read(q, m)
    w = torch.softmax(q[0] @ m.t(), dim=1)
    torch.testing.assert_close(z_hat[0], w @ m)
    assert d.shape == (1, 3, 4)


def test_discriminative_loss_is_the_trace_ratio_of_the_scatter_matrices():
    torch.manual_seed(0)
    n, c, k = 6, 5, 20
    m, q = _unit(n, c), _unit(1, k, c)
    d = mem.cosine(q, m)
    got = mem.discriminative_loss(q, m, d)
    nearest = d[0].argmax(1)
    counts = torch.bincount(nearest, minlength=n).float()
    mbar = m.mean(0)
    s_b = sum(counts[j] / k * torch.outer(m[j] - mbar, m[j] - mbar) for j in range(n))  # eq. 13
    s_w = torch.zeros(c, c)
    for j in range(n):
        members = q[0][nearest == j]
        s_wj = sum((torch.outer(z - m[j], z - m[j]) for z in members), torch.zeros(c, c))  # eq. 15
        s_w += counts[j] / k * s_wj  # eq. 16
    torch.testing.assert_close(got, torch.trace(s_w) / torch.trace(s_b))


def test_training_pulls_queries_to_prototypes_and_keeps_items_unit():
    entry = get_model("protomem")
    cfg = {**entry.preset("edge"), **entry.test_overrides}
    torch.manual_seed(0)
    model = entry.torch_side().build(cfg)
    opt = model.configure_optimizers()
    clips = torch.rand(4, 5, 3, 32, 32) * 2 - 1
    first = model.training_step(clips, opt, 0)["dis"]
    for _ in range(15):
        last = model.training_step(clips, opt, 0)["dis"]
    assert last < first
    torch.testing.assert_close(model.memory.norm(dim=1), torch.ones(model.memory.shape[0]))


def test_memory_is_exported_state_and_zero_means_trained():
    entry = get_model("protomem")
    cfg = {**entry.preset("edge"), **entry.test_overrides}
    torch.manual_seed(0)
    model = entry.torch_side().build(cfg).eval()
    names = [s.name for s in model.state_specs()]
    assert names == ["frames", "memory"]
    step = model.step_module()
    frame = torch.rand(1, 3, 32, 32)
    frames = torch.rand(1, 12, 32, 32)
    zero = torch.zeros(1, *model.memory.shape)
    with torch.no_grad():
        e0, _, _, items = step(frame, frames, zero)
        torch.testing.assert_close(items[0], model.memory)
        e1, _, _, items1 = step(frame, frames, items)
        assert torch.allclose(e0, e1)
        other = _unit(1, *model.memory.shape)
        e2, _, _, items2 = step(frame, frames, other)
        torch.testing.assert_close(items2, other)
        assert not torch.allclose(e0, e2)


def test_gated_update_only_on_well_predicted_clips():
    entry = get_model("protomem")
    cfg = {**entry.preset("edge"), **entry.test_overrides}
    torch.manual_seed(0)
    model = entry.torch_side().build(cfg).eval()
    clip = torch.rand(1, 5, 3, 32, 32) * 2 - 1
    m = model.memory.detach().clone()
    assert torch.equal(model.gated_update(m, clip, threshold=0.0), m)  # nothing passes a zero gate
    assert not torch.equal(model.gated_update(m, clip, threshold=10.0), m)
