"""The injected anomaly test set built from vtest.avi frames 480-794."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edge_vad.data.frames import read_frames
from edge_vad.data.labels import load_labels
from edge_vad.data.testset import inject_anomalies, make_testset
from edge_vad.errors import EdgeVadError

VTEST = Path(__file__).resolve().parents[2] / "shared/data/vtest.avi"
START, STOP = 480, 795


@pytest.fixture(scope="module")
def source_frames() -> list[np.ndarray]:
    if not VTEST.exists():
        pytest.skip(f"{VTEST} not present")
    return list(read_frames(VTEST, START, STOP))


@pytest.fixture(scope="module")
def injected(source_frames):
    return inject_anomalies(source_frames, seed=0)


def test_same_seed_same_output(source_frames, injected):
    frames, labels, events = injected
    again, labels2, events2 = inject_anomalies(source_frames, seed=0)
    np.testing.assert_array_equal(labels, labels2)
    assert all(np.array_equal(a, b) for a, b in zip(frames, again))
    assert json.dumps(events) == json.dumps(events2)


def test_labels_match_changed_pixels(source_frames, injected):
    frames, labels, _ = injected
    assert labels.dtype == np.int8 and labels.shape == (STOP - START,)
    for i, (src, out) in enumerate(zip(source_frames, frames)):
        if labels[i]:
            assert not np.array_equal(src, out), f"frame {i} labelled anomalous but unchanged"
        else:
            assert np.array_equal(src, out), f"frame {i} labelled normal but changed"


def test_schedule_is_sane(injected):
    _, labels, events = injected
    assert 0.25 <= labels.mean() <= 0.5
    assert not labels[:15].any(), "the first frames must stay normal"
    assert {e["kind"] for e in events} == {"vehicle", "bike", "thrown_object", "running", "fast_crossing"}
    for e in events:
        assert labels[e["first_frame"]:e["last_frame"] + 1].all()
        json.dumps(e)  # events.json must be able to hold it


def test_other_seed_differs(source_frames, injected):
    _, labels, _ = injected
    _, other, _ = inject_anomalies(source_frames[:150], seed=1)
    assert other.shape == (150,) and other.any()
    assert not np.array_equal(labels[:150], other)


def test_training_frames_are_refused(tmp_path):
    with pytest.raises(EdgeVadError, match="reserved for training"):
        make_testset(VTEST, tmp_path, start=100)


def test_missing_video_names_the_path(tmp_path):
    missing = tmp_path / "nope.avi"
    with pytest.raises(EdgeVadError, match="nope.avi"):
        make_testset(missing, tmp_path / "out")


def test_make_testset_writes_readable_files(tmp_path, injected):
    paths = make_testset(VTEST, tmp_path, seed=0, scale=0.25)
    video = list(read_frames(paths["video"]))
    assert len(video) == STOP - START
    assert video[0].shape == (144, 192, 3)
    labels = load_labels(paths["labels"], frames=len(video))
    np.testing.assert_array_equal(labels, injected[1])
    meta = json.loads(paths["events"].read_text())
    assert meta["start"] == START and meta["stop"] == STOP and meta["seed"] == 0
    assert len(meta["events"]) == len(injected[2])
