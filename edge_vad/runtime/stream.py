"""One camera's path through the model: frame → preprocessing → backend step → score.

The recurrent/memory state lives here, per camera, as the arrays the graph
returned last step; nothing about the model is hard-coded, it all comes from
the bundle's manifest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from edge_vad.data.preprocess import FramePreprocessor
from edge_vad.data.spec import InputSpec
from edge_vad.runtime.backends import Backend, create_backend
from edge_vad.runtime.bundle.loader import Bundle
from edge_vad.runtime.capture.motion_gate import MotionGate
from edge_vad.scoring.streaming import Calibration, StreamingScorer


@dataclass
class StepResult:
    index: int  # frames this stream has scored or warmed up on, from 0
    error: float  # the paper's raw error e(t); NaN while warming up
    score: float  # streaming score in σ of held-out normal footage; NaN while warming up
    error_map: np.ndarray | None  # H×W, None while warming up (and when held)
    # The motion gate answered: nothing moved since the model last looked, so
    # error and score repeat that frame's and the model did not run.
    held: bool = False


class CameraStream:
    def __init__(self, bundle: Bundle, backend: Backend | None = None, threads: int | None = None,
                 backend_options: dict | None = None, motion_gate: MotionGate | None = None):
        m = bundle.manifest
        self.gate = motion_gate
        self.bundle = bundle
        self.spec = InputSpec(**m.input.model_dump())
        self.preprocess = FramePreprocessor(self.spec)
        # device / build_plan come from the bundle; backend_options (a profile's device, cache dir) override them.
        options = {"device": m.target.device, "build_plan": m.target.build_plan, "fixed_shapes": m.graph.fixed_shapes,
                   "precision": m.target.precision, **(backend_options or {})}
        self.backend = backend or create_backend(
            m.target.backend, bundle.graph_path, providers=m.target.providers or None, threads=threads, **options
        )
        self.graph = m.graph
        self.calibration = Calibration.from_dict(m.score.calibration)
        self.scorer = StreamingScorer(self.calibration)
        self.warmup = m.warmup_frames
        self.reset()

    def reset(self) -> None:
        """Forget the scene (after a gap in the stream): zero state, warm up again."""
        self.state = {
            s.input: np.zeros((1, *s.shape), dtype=np.float32) for s in self.bundle.manifest.state
        }
        self.index = 0
        self.scorer.reset()
        self.preprocess.reset()
        self._last: StepResult | None = None
        self._still_run = 0  # consecutive frames the gate found still
        if self.gate is not None:
            self.gate.reset()

    @property
    def threshold(self) -> float:
        return self.calibration.threshold

    def step(self, frame_bgr: np.ndarray) -> StepResult:
        held = self._held(frame_bgr)
        if held is not None:
            return held
        x = self.preprocess(frame_bgr)[None]
        out = self.backend.run({self.graph.frame_input: x, **self.state})
        return self._finish(out)

    def _held(self, frame_bgr: np.ndarray) -> StepResult | None:
        """The last result again, if the motion gate finds the view unchanged (never while warming up).

        The model keeps running for the first ``warmup`` still frames: by then its
        window holds only the still view, so the score it settles on is the score
        of a still scene, and that is what is repeated. Repeating the score of the
        last moving frame instead would hold a busy moment's score for as long as
        the scene stays empty.
        """
        last = self._last
        if self.gate is None or last is None or math.isnan(last.score):
            return None
        if not self.gate.still(frame_bgr):
            self._still_run = 0
            return None
        self._still_run += 1
        if self._still_run <= self.warmup:
            return None
        return StepResult(last.index, last.error, last.score, None, held=True)

    def _finish(self, out: dict[str, np.ndarray]) -> StepResult:
        for s in self.bundle.manifest.state:
            self.state[s.input] = out[s.output]
        index = self.index
        self.index += 1
        if index < self.warmup:
            # The graph runs on zero state while filling up; its output means nothing yet.
            result = StepResult(index, math.nan, math.nan, None)
        else:
            error_map = out[self.graph.error_map_output][0, 0]
            result = StepResult(index, float(out[self.graph.error_output][0]), self.scorer(error_map), error_map)
        self._last = result
        return result

    # -- persistence: the daemon snapshots this so a restart does not forget the scene

    def get_state(self) -> dict:
        return {"state": {k: v.copy() for k, v in self.state.items()}, "index": self.index,
                "ema": self.scorer.smoothed}

    def set_state(self, snapshot: dict) -> None:
        expected = {s.input: (1, *s.shape) for s in self.bundle.manifest.state}
        state = snapshot["state"]
        if set(state) != set(expected) or any(tuple(state[k].shape) != v for k, v in expected.items()):
            raise ValueError("state snapshot does not fit this bundle's state tensors")
        self.state = {k: np.asarray(state[k], dtype=np.float32) for k in expected}
        self.index = int(snapshot["index"])
        self.scorer.smoothed = snapshot.get("ema")

    @property
    def batchable(self) -> bool:
        """The graph takes a batch of cameras at once (dynamic first axis)."""
        return all(isinstance(t.shape[0], str) for t in self.graph.inputs) if self.graph.inputs else False


def step_batch(streams: list["CameraStream"], frames: list[np.ndarray]) -> list[StepResult]:
    """One backend call for several cameras that share a backend and a batchable graph.

    Each camera keeps its own state and scorer; the result is what ``step``
    would give camera by camera.
    """
    if len(streams) == 1:
        return [streams[0].step(frames[0])]
    first = streams[0]
    if not first.batchable or any(s.backend is not first.backend for s in streams):
        return [s.step(f) for s, f in zip(streams, frames)]
    results: list[StepResult | None] = [s._held(f) for s, f in zip(streams, frames)]
    todo = [i for i, r in enumerate(results) if r is None]
    if todo:
        x = np.concatenate([streams[i].preprocess(frames[i])[None] for i in todo])
        inputs = {first.graph.frame_input: x}
        for name in first.state:
            inputs[name] = np.concatenate([streams[i].state[name] for i in todo])
        out = first.backend.run(inputs)
        for j, i in enumerate(todo):
            results[i] = streams[i]._finish({k: v[j:j + 1] for k, v in out.items()})
    return results
