"""The object-attribute detector: objects found, attributes measured, the abnormal one named."""

from __future__ import annotations

import numpy as np
import pytest

from edge_vad.data.objects import ATTRIBUTES, COLUMNS, WARMUP, ObjectAttributes
from edge_vad.data.spec import InputSpec
from helpers import need_vtest

SPEC = InputSpec("gray", 288, 384, fps=10.0, motion="attributes:16")


@pytest.fixture(scope="module")
def normal():
    from edge_vad.data.frames import read_frames

    return list(read_frames(need_vtest(), 100, 100 + WARMUP + 30))


def _table(frames):
    prep = ObjectAttributes(SPEC)
    return [prep(f) for f in frames], prep


def test_walkers_are_objects_with_walking_speeds(normal):
    tables, _ = _table(normal)
    assert all(t.shape == (16, len(COLUMNS)) and not t.any() for t in tables[:WARMUP - 1])  # learning the scene
    rows = np.concatenate([t[t[:, 0] > 0] for t in tables[WARMUP:]])
    assert len(rows) >= 3 * 30  # several walkers in every frame
    speed = rows[:, 1 + ATTRIBUTES.index("speed")]
    assert 0.2 < np.median(speed) < 3.0  # analysis pixels per frame: walking


def test_a_racing_block_is_fast_and_a_block_left_behind_becomes_still(normal):
    moving = [f.copy() for f in normal]
    for k in range(WARMUP, WARMUP + 10):
        x = 60 + 40 * (k - WARMUP)
        moving[k][400:460, x:x + 60] = (250, 250, 250)
    tables, _ = _table(moving)
    s = ATTRIBUTES.index("speed") + 1
    assert max(t[:, s].max() for t in tables[WARMUP + 2:WARMUP + 10]) > 8.0

    left = [f.copy() for f in normal]
    for k in range(WARMUP, len(left)):
        left[k][470:500, 300:330] = (20, 20, 150)
    tables, prep = _table(left)
    st = ATTRIBUTES.index("stillness") + 1
    box_rows = [t[(t[:, 0] > 0) & (np.abs(t[:, 1] - 315 / 768) < 0.03) & (np.abs(t[:, 2] - 500 / 576) < 0.03)]
                for t in tables[-3:]]
    assert all(len(r) and r[:, st].max() >= 0.9 for r in box_rows), "still for nearly 3 s: saturating"
    assert prep.objects and all("box_source" in o for o in prep.objects)


def test_a_walker_who_stood_while_the_scene_was_learnt_leaves_no_ghost(normal):
    """A person present through the warm-up and gone after it: their ghost is learnt away, not an object."""
    frames = [f.copy() for f in normal]
    patch = frames[0][380:470, 600:640].copy()
    for k in range(WARMUP):
        frames[k][380:470, 600:640] = (30, 30, 30)  # dark figure standing there
    tables, prep = _table(frames)
    near = [t[(t[:, 0] > 0) & (np.abs(t[:, 1] - 620 / 768) < 0.04) & (np.abs(t[:, 2] - 470 / 576) < 0.04)]
            for t in tables[-10:]]
    st = ATTRIBUTES.index("stillness") + 1
    assert not any(len(r) and r[:, st].max() > 0.5 for r in near), "a ghost stayed as a still object"
    assert patch.shape == (90, 40, 3)


def test_the_density_scores_an_abnormal_object_high_and_says_why(tmp_path):
    import torch

    from edge_vad.models import get_model
    from edge_vad.models.objattr.model import describe_object
    from edge_vad.training.checkpoint import load_model
    from edge_vad.training.trainer import train

    train("objattr", "edge", need_vtest(), tmp_path, frames="0:240", overrides=get_model("objattr").test_overrides,
          log=lambda *a: None)
    model, _ = load_model(tmp_path)
    bank = model.bank[: int(model.filled)] * model.units
    normal = bank[:8]
    odd = normal.clone()
    odd[:, ATTRIBUTES.index("speed")] = 15.0  # fifteen pixels a frame: nothing normal moves like that
    table = torch.zeros(1, 16, len(COLUMNS))
    table[0, :8, 0], table[0, :8, 1:] = 1.0, normal
    error, error_map, why = model.score_table(table)
    table[0, 8, 0], table[0, 8, 1:] = 1.0, odd[0]
    error2, error_map2, why2 = model.score_table(table)
    assert float(error) < 2.0 and float(error2) > 5.0 and int(error_map2[0, 0, 0].argmax()) == 8
    assert error_map[0, 0, 0, 9:].abs().max() == 0  # empty slots score nothing
    assert describe_object(odd[0].tolist(), why2[0, 8].tolist()).startswith("speed")
