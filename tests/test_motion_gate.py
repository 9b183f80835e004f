"""The motion gate: the model rests while nothing moves, and its state stays that of the scene."""

from __future__ import annotations

import numpy as np
import pytest

from daemon_helpers import vtest_frames


def _still_scene(frame, n, sigma=3.0, seed=0):
    """``n`` copies of one view with fresh sensor noise each: a camera on an empty scene."""
    rng = np.random.default_rng(seed)
    return [np.clip(frame + rng.normal(0, sigma, frame.shape), 0, 255).astype(np.uint8) for _ in range(n)]


def test_gate_holds_on_a_still_scene_and_opens_for_motion_and_slow_change():
    from edge_vad.runtime.capture.motion_gate import MotionGate

    walkers = vtest_frames(100, 160)
    gate = MotionGate()
    assert not any(gate.still(f) for f in walkers), "people walking must always reach the model"

    still = _still_scene(walkers[-1].astype(np.float32), 30)
    gate = MotionGate()
    assert [gate.still(f) for f in still] == [False] + [True] * 29

    # A small object entering: a 12×24 px block, smaller than the nearest walkers.
    moved = still[-1].copy()
    moved[300:324, 400:412] = 255
    assert not gate.still(moved)

    # Light fading by one gray level a frame: each frame looks like the last, but the
    # reference is the frame the model saw, so the change adds up and gets through.
    gate = MotionGate()
    base = still[0].astype(np.int16)
    opened = [k for k in range(20) if not gate.still(np.clip(base + k, 0, 255).astype(np.uint8))]
    assert opened[0] == 0 and any(5 <= k <= 8 for k in opened), opened


class CountingBackend:
    """The real backend, counting its calls."""

    def __init__(self, backend):
        self.backend, self.name, self.calls = backend, backend.name, 0

    def run(self, inputs):
        self.calls += 1
        return self.backend.run(inputs)


@pytest.mark.parametrize("batched", [False, True])
def test_stream_skips_the_model_on_still_frames_and_keeps_its_state(daemon_bundle, batched):
    from edge_vad.runtime.bundle.loader import load_bundle
    from edge_vad.runtime.capture.motion_gate import MotionGate
    from edge_vad.runtime.stream import CameraStream, step_batch

    bundle = load_bundle(daemon_bundle)
    first = CameraStream(bundle, threads=1, motion_gate=MotionGate())
    counter = CountingBackend(first.backend)
    first.backend = counter
    streams = [first] + ([CameraStream(bundle, backend=counter, motion_gate=MotionGate())] if batched else [])
    walkers = vtest_frames(100, 130)
    still = _still_scene(walkers[-1].astype(np.float32), 30)
    moving_again = vtest_frames(130, 140)

    def feed(frames):
        if not batched:
            return [first.step(f) for f in frames]
        # The second camera keeps moving (other walkers): one call for both, or for it alone.
        return [step_batch(streams, [f, walkers[i % len(walkers)]])[0] for i, f in enumerate(frames)]

    live = feed(walkers)
    w = first.warmup
    # The scene empties and stays as the model last saw it, with sensor noise. The model
    # runs on for one window of still frames, so its score becomes a still scene's ...
    settling = feed(still[:w])
    assert not any(r.held for r in settling)
    calls = counter.calls
    state = {k: v.copy() for k, v in first.state.items()}
    # ... and then rests, repeating that score.
    held = feed(still[w:])
    assert all(r.held for r in held)
    assert counter.calls - calls == (len(held) if batched else 0), "no model call unless a neighbour moves"
    assert all(r.score == settling[-1].score and r.error == settling[-1].error and r.error_map is None for r in held)
    assert all(np.array_equal(state[k], first.state[k]) for k in state), "the state is the still scene's, untouched"
    resumed = feed(moving_again)
    assert not any(r.held for r in resumed)
    assert resumed[0].index == settling[-1].index + 1, "the model continues from the last frame it saw"
    assert not np.isnan(live[-1].score)


@pytest.mark.parametrize("frame, thumb", [((768, 576), (192, 144)), ((1920, 1080), (160, 90)), ((640, 480), (160, 120)),
                                          ((641, 479), (160, 120)), ((100, 80), (100, 80))])
def test_thumbnail_averages_whole_blocks_of_pixels_when_the_frame_allows(frame, thumb):
    from edge_vad.runtime.capture.motion_gate import thumbnail_size

    assert thumbnail_size(*frame, 160) == thumb
    w, h = frame
    if thumb != (160, 120) or frame == (640, 480):
        assert w % thumb[0] == 0 and h % thumb[1] == 0 and w // thumb[0] == h // thumb[1]
