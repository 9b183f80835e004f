"""One camera's path through the model: frame → preprocessing → backend step → score.

The recurrent/memory state lives here, per camera, as the arrays the graph
returned last step; nothing about the model is hard-coded, it all comes from
the bundle's manifest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from edge_vad.data.preprocess import InputSpec, preprocess
from edge_vad.runtime.backends import Backend, create_backend
from edge_vad.runtime.bundle import Bundle
from edge_vad.scoring.streaming import Calibration, StreamingScorer


@dataclass
class StepResult:
    index: int  # frames this stream has scored or warmed up on, from 0
    error: float  # the paper's raw error e(t); NaN while warming up
    score: float  # streaming score in σ of held-out normal footage; NaN while warming up
    error_map: np.ndarray | None  # H×W, None while warming up


class CameraStream:
    def __init__(self, bundle: Bundle, backend: Backend | None = None, threads: int | None = None):
        m = bundle.manifest
        self.bundle = bundle
        self.spec = InputSpec(**m.input.model_dump())
        self.backend = backend or create_backend(
            m.target.backend, bundle.graph_path, providers=m.target.providers or None, threads=threads
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

    @property
    def threshold(self) -> float:
        return self.calibration.threshold

    def step(self, frame_bgr: np.ndarray) -> StepResult:
        x = preprocess(frame_bgr, self.spec)[None]
        out = self.backend.run({self.graph.frame_input: x, **self.state})
        for s in self.bundle.manifest.state:
            self.state[s.input] = out[s.output]
        index = self.index
        self.index += 1
        if index < self.warmup:
            # The graph runs on zero state while filling up; its output means nothing yet.
            return StepResult(index, math.nan, math.nan, None)
        error_map = out[self.graph.error_map_output][0, 0]
        return StepResult(index, float(out[self.graph.error_output][0]), self.scorer(error_map), error_map)
