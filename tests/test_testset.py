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
    paths = make_testset(VTEST, tmp_path, seed=0, scale=0.25, parts=("moving",))
    video = list(read_frames(paths["video"]))
    assert len(video) == STOP - START
    assert video[0].shape == (144, 192, 3)
    labels = load_labels(paths["labels"], frames=len(video))
    np.testing.assert_array_equal(labels, injected[1])
    meta = json.loads(paths["events"].read_text())
    assert meta["start"] == START and meta["stop"] == STOP and meta["seed"] == 0
    assert len(meta["events"]) == len(injected[2])


# ------------------------------------------------------------ appearance/stillness, counterfactuals, soak


@pytest.fixture(scope="module")
def still(source_frames):
    base = source_frames + source_frames[::-1]
    return base, inject_anomalies(base, seed=0, kinds="still")


def test_still_clip_has_every_kind_and_changes_nothing_else(still):
    from edge_vad.data.testset.scene import STILL_KINDS

    base, (frames, labels, events) = still
    assert {e["kind"] for e in events} == set(STILL_KINDS)
    for e in events:
        assert labels[e["first_frame"]:e["last_frame"] + 1].all()
        # Still means still: the object's foot point is one place for the whole event.
        assert len(e["params"]["foot"]) == 2
    for i in np.flatnonzero(labels == 0):
        assert frames[i] is base[i]
    # Standing where nothing ever is: no walker of the clip comes within a body height of that spot.
    intruders = [e for e in events if e["kind"] == "lawn_intruder"]
    assert intruders


def test_counterfactual_keeps_the_frames_and_slows_the_runner(source_frames, injected):
    twin, labels, events = inject_anomalies(source_frames, seed=0, counterfactual=True)
    assert labels.sum() == 0
    runner = [e for e in injected[2] if e["kind"] == "running"]
    walkers = [e for e in events if e["kind"] == "walking"]
    assert len(walkers) == len(runner) == 1
    r, w = runner[0], walkers[0]
    assert w["params"]["speed_heights_per_frame"] < r["params"]["speed_heights_per_frame"] / 3
    assert w["params"]["source_frame"] == r["params"]["source_frame"]  # the same person
    assert abs(w["first_frame"] - r["first_frame"]) <= 2 and w["last_frame"] > r["last_frame"]
    changed = {i for i, (a, b) in enumerate(zip(twin, source_frames)) if a is not b}
    assert changed and all(w["first_frame"] <= i <= w["last_frame"] for i in changed)


def test_soak_variants_are_the_changes_they_name(source_frames):
    import cv2

    from edge_vad.data.testset.soak import VARIANTS, random_stream, soak_variant

    frames = source_frames[:40]
    mean = lambda fs: float(np.mean([f.mean() for f in fs]))  # noqa: E731
    clean = mean(frames)
    for name in VARIANTS:
        out = soak_variant(frames, name)
        assert len(out) == len(frames) and out[0].shape == frames[0].shape
    assert mean(soak_variant(frames, "darker")) == pytest.approx(0.7 * clean, rel=0.02)
    dusk = soak_variant(frames, "dusk")
    assert dusk[-1].mean() < 0.5 * frames[-1].mean() + 2 and dusk[0].mean() == pytest.approx(frames[0].mean(), abs=1)
    assert all(a is b for a, b in zip(soak_variant(frames, "reversed"), frames[::-1]))
    g = lambda f: cv2.cvtColor(f, cv2.COLOR_BGR2GRAY).astype(np.float32)  # noqa: E731
    shifts = [cv2.phaseCorrelate(g(a), g(b))[0] for a, b in zip(frames, soak_variant(frames, "shake"))]
    assert max(max(abs(dx), abs(dy)) for dx, dy in shifts) <= 2.3 and max(abs(s[0]) for s in shifts) > 0.5
    noisy = soak_variant(frames, "noise")
    assert np.std(noisy[0].astype(np.float32) - frames[0].astype(np.float32)) == pytest.approx(6, abs=0.8)
    stream = list(random_stream(frames, minutes=0.5, fps=10, seed=3))
    assert len(stream) == 300 and {n for _, n in stream} >= {"clean"}
    assert [n for _, n in stream] == [n for _, n in random_stream(frames, minutes=0.5, fps=10, seed=3)]


def test_make_testset_indexes_every_part(tmp_path):
    paths = make_testset(VTEST, tmp_path, seed=0, scale=0.25, soak_minutes=0.2)
    index = json.loads(paths["index"].read_text())
    assert set(index["clips"]) == {"moving", "still"} and "random" in index["soak"]
    for clip in index["clips"].values():
        for key in ("video", "counterfactual"):
            assert len(list(read_frames(tmp_path / clip[key]))) == clip["frames"]
        assert load_labels(tmp_path / clip["labels"], frames=clip["frames"]).sum() > 0
    for name, soak in index["soak"].items():
        assert len(list(read_frames(tmp_path / soak["video"]))) == soak["frames"], name
    assert index["soak"]["random"]["frames"] == 120 and index["soak"]["random"]["segments"][0][0] == 0
