"""What every torch model of edge-vad provides to training, evaluation and export.

A model scores *windows*: a clip of ``clip_length`` frames gives one raw error
(the paper's score, larger = more anomalous) and a per-pixel error map for the
window's last frame. For deployment it provides a *step* module that takes one
frame and explicit state tensors and returns the same outputs plus the new
state; the runtime carries that state between frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from edge_vad.data.spec import InputSpec


@dataclass(frozen=True)
class StateSpec:
    name: str
    shape: tuple[int, ...]  # per camera, without the batch axis
    init: str = "zeros"

    def to_dict(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "dtype": "float32", "init": self.init}


class VadModel(nn.Module):
    name: str = ""

    def __init__(self, config: dict[str, Any]):
        super().__init__()
        self.config = dict(config)

    # --- description -----------------------------------------------------
    def input_spec(self, fps: float | None = None) -> InputSpec:
        size = self.config["size"]
        return InputSpec(color=self.config["color"], height=size, width=size, fps=fps)

    @property
    def clip_length(self) -> int:
        raise NotImplementedError

    @property
    def train_clip_length(self) -> int:
        """Frames per training clip; longer than the scoring window when the
        paper trains on more targets than it scores (e.g. all T predictions)."""
        return self.clip_length

    @property
    def train_clip_every(self) -> int:
        """Frames between the starts of two training clips; long clips that each
        train many positions start further apart, so an epoch costs about the same."""
        return 1

    @property
    def warmup_frames(self) -> int:
        """Frames a stream must see before its first score."""
        return self.clip_length - 1

    # --- training and scoring --------------------------------------------
    def loss(self, clips: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        raise NotImplementedError

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Named optimisers; a model with adversarial or staged training returns several."""
        c = self.config
        return {"main": torch.optim.Adam(self.parameters(), lr=c["lr"], betas=(0.9, 0.999), weight_decay=c.get("weight_decay", 0.0))}

    def training_step(self, clips: torch.Tensor, optimizers: dict[str, torch.optim.Optimizer], epoch: int) -> dict[str, float]:
        """One optimisation step on a batch of clips; returns numbers for the progress bar.

        The default minimises ``loss``; models with several losses/optimisers
        (discriminators, training stages) override this.
        """
        loss, logs = self.loss(clips)
        self.optimize(loss, optimizers["main"])
        return {"loss": float(loss.detach()), **logs}

    @staticmethod
    def optimize(loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        """One optimiser step; a non-finite loss stops training (the trainer reports it) instead of
        silently poisoning the weights."""
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {loss.item()}; lower the learning rate")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def score_windows(self, clips: torch.Tensor) -> dict[str, torch.Tensor]:
        """clips B×L×C×H×W → {"error": B, "error_map": B×1×H×W}."""
        raise NotImplementedError

    # --- deployment ------------------------------------------------------
    def state_specs(self) -> list[StateSpec]:
        c = self.config
        return [StateSpec("frames", ((self.clip_length - 1) * self.input_spec().channels, c["size"], c["size"]))]

    def step_module(self) -> nn.Module:
        return WindowStep(self)


class WindowStep(nn.Module):
    """Streaming step for window models: the state is the last L−1 frames.

    Exactly equivalent to scoring each sliding window, so the deployed model
    gives the numbers the paper's evaluation gives.
    """

    def __init__(self, model: VadModel):
        super().__init__()
        self.model = model
        self.channels = model.input_spec().channels

    def forward(self, frame: torch.Tensor, frames: torch.Tensor):
        b, _, h, w = frame.shape
        past = frames.reshape(b, -1, self.channels, h, w)
        window = torch.cat([past, frame.unsqueeze(1)], dim=1)
        out = self.model.score_windows(window)
        new_frames = window[:, 1:].reshape(b, -1, h, w)
        return out["error"], out["error_map"], new_frames

    input_names = ("frame", "frames")
    output_names = ("error", "error_map", "frames_out")
