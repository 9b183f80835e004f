"""STM-AE specifics: top-k memory write, cosine-softmax read, salt-and-pepper, PSNR score."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402

from edge_vad.models import get_model  # noqa: E402


def test_write_moves_each_item_towards_its_top_k_queries_only():
    from edge_vad.models.stmae.model import MemoryPool

    torch.manual_seed(0)
    pool = MemoryPool(items=4, dim=8, topk=2)
    before = F.normalize(pool.items.detach().clone(), dim=1)
    z = torch.randn(2, 8, 3, 3)
    q = MemoryPool.queries(z)
    pool.write(z)
    after = pool.items.detach()
    torch.testing.assert_close(after.norm(dim=1), torch.ones(4))
    sim = before @ q.t()
    for i in range(4):
        vals, idx = sim[i].topk(2)
        expected = F.normalize(before[i] + (F.softmax(vals, 0)[:, None] * q[idx]).sum(0), dim=0)
        torch.testing.assert_close(after[i], expected)


def test_read_is_a_softmax_over_cosine_similarities():
    from edge_vad.models.stmae.model import MemoryPool

    pool = MemoryPool(items=5, dim=6, topk=2)
    z = torch.randn(1, 6, 2, 2) * 10  # the read must not depend on the query's norm
    r = pool.read(z)
    torch.testing.assert_close(r, pool.read(z / 10))
    m = F.normalize(pool.items.detach(), dim=1)
    q = F.normalize(z[0, :, 0, 0], dim=0)
    torch.testing.assert_close(r[0, :, 0, 0], F.softmax(m @ q, 0) @ m)


def test_salt_and_pepper_hits_the_requested_fraction():
    from edge_vad.models.stmae.model import salt_and_pepper

    torch.manual_seed(0)
    x = torch.full((1, 4, 100, 100), 0.5)
    y = salt_and_pepper(x, 0.2)
    changed = y != 0.5
    assert abs(float(changed.float().mean()) - 0.2) < 0.01
    assert set(torch.unique(y[changed]).tolist()) == {0.0, 1.0}


def test_error_is_negative_psnr_and_staging_freezes_the_autoencoders():
    entry = get_model("stmae")
    cfg = {**entry.preset("edge"), **entry.test_overrides, "epochs": 4, "pretrain": 0.5}
    m = entry.torch_side().build(cfg)
    opts = m.configure_optimizers()
    clips = torch.rand(2, m.clip_length, m.input_spec().channels, cfg["size"], cfg["size"])
    m.train()
    logs = m.training_step(clips, opts, epoch=0)
    assert "denoise" in logs and "flow_rec" in logs
    enc = [p.detach().clone() for p in m.app_ae.encoder.parameters()]
    logs = m.training_step(clips, opts, epoch=2)
    assert {"app", "motion", "adv", "mem", "d"} <= set(logs)
    assert all(torch.equal(a, b) for a, b in zip(enc, m.app_ae.encoder.parameters())), "frozen after pre-training"
    m.eval()
    with torch.no_grad():
        out = m.score_windows(clips)
        pred, _, _ = m.predict(*m._split(clips)[:2])
    mse = (pred - clips[:, -1, :1]).pow(2).flatten(1).mean(1)
    torch.testing.assert_close(out["error"], -10 * torch.log10(1 / mse))
