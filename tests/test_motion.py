"""Motion preprocessing on real frames: DIS flow, foreground boxes, and the runtime feeding it."""

from __future__ import annotations

import numpy as np
import pytest

from edge_vad.data.preprocess import FramePreprocessor, preprocess_many
from edge_vad.data.spec import InputSpec, extra_channels
from edge_vad.data.spec import parse_motion as parse
from edge_vad.errors import EdgeVadError
from helpers import need_vtest


def _frames(a: int, b: int):
    from edge_vad.data.frames import read_frames

    return list(read_frames(need_vtest(), a, b))


def test_names_and_channels():
    assert parse("flow") == ("flow", 0) and parse("objects:6") == ("objects", 6)
    assert InputSpec("gray", 32, 32, motion="flow").channels == 3
    assert InputSpec("rgb", 32, 32, motion="objects:5").channels == 3 + 2 + 5
    assert extra_channels("objects:1") == 3
    for bad in ("optical", "objects", "objects:0", "flow:2"):
        with pytest.raises(EdgeVadError, match="motion"):
            parse(bad)


def test_flow_follows_a_shifted_frame():
    """A frame shifted right by 6 native px gives flow ≈ +6/scale in x over textured areas."""
    frame = _frames(200, 201)[0]
    spec = InputSpec("gray", 96, 128, motion="flow")
    shifted = np.roll(frame, 6, axis=1)
    x = preprocess_many([frame, shifted], spec)
    assert x.shape == (2, 3, 96, 128)
    assert np.all(x[0, 1:] == 0), "the first frame has no previous one: zero flow"
    fx, fy = x[1, 1, 10:-10, 10:-10], x[1, 2, 10:-10, 10:-10]
    # Flow is in pixels at 2× the input size: 6 px at 768 wide → 6 · 256/768 = 2 px.
    assert abs(np.median(fx) - 2.0) < 0.4 and abs(np.median(fy)) < 0.3


def test_objects_box_the_walkers_and_a_moving_block():
    frames = _frames(300, 340)
    spec = InputSpec("gray", 120, 160, motion="objects:8")
    # A bright block moving fast across the last frames must be boxed.
    for i, f in enumerate(frames[-6:]):
        x0 = 100 + 40 * i
        f[300:340, x0 : x0 + 40] = 255
    x = preprocess_many(frames, spec)
    masks = x[:, 3:]
    assert set(np.unique(masks)) <= {0.0, 1.0}
    counts = (masks.reshape(len(x), 8, -1).max(-1) > 0).sum(1)
    assert counts[0] == 0, "no boxes before the background model has seen two frames"
    assert counts[10:].min() >= 2, "vtest always has several walkers in view"
    # The block at native (300:340, 300:340) in the last frame → about (62:71, 62:71) at 160×120.
    assert masks[-1, :, 64:69, 64:69].max(0).min() == 1.0
    # Slots are filled in order, largest box first.
    areas = masks[-1].reshape(8, -1).sum(-1)
    filled = areas[areas > 0]
    assert np.all(np.diff(filled) <= 0) and np.all(areas[len(filled):] == 0)


def test_stream_preprocessor_is_stateful_and_resets():
    frames = _frames(100, 104)
    spec = InputSpec("gray", 48, 64, motion="flow")
    prep = FramePreprocessor(spec)
    a = [prep(f) for f in frames]
    np.testing.assert_array_equal(np.stack(a), preprocess_many(frames, spec))
    prep.reset()
    assert np.all(prep(frames[2])[1:] == 0), "after reset there is no previous frame"


def test_manifest_motion_is_optional():
    from edge_vad.runtime.bundle.manifest import InputInfo

    assert InputInfo(color="gray", height=8, width=8).motion is None
    assert InputInfo(color="gray", height=8, width=8, motion="flow").motion == "flow"
