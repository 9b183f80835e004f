"""The object-attribute detector: k-nearest-neighbour distance of each object to normal objects.

The graph takes the frame's object table (B×K×F: validity, then ``edge_vad.data.objects.ATTRIBUTES``)
and returns, per object, its distance to the k nearest normal objects in ``units`` divided by the
typical such distance among normal objects (leave-one-out over the bank): 1 is an ordinary object, 5
is five times further from anything normal than normal objects are from each other. ``error`` is the
frame's most abnormal object, ``error_map`` (B×1×1×K) every slot's, and ``why`` (B×K×A) how far each
attribute of each object is from its nearest normal object, in units: what the alert says.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from edge_vad.data.objects import ANALYSIS, ATTRIBUTES
from edge_vad.data.spec import InputSpec
from edge_vad.models.base import StateSpec, VadModel


class ObjAttr(VadModel):
    name = "objattr"

    def __init__(self, config: dict[str, Any]):
        super().__init__(config)
        n = int(config["bank"])
        self.register_buffer("bank", torch.zeros(n, len(ATTRIBUTES)))  # in units
        self.register_buffer("units", torch.tensor(config["units"], dtype=torch.float32))
        self.register_buffer("norm", torch.ones(()))
        self.register_buffer("filled", torch.zeros((), dtype=torch.int64))

    def input_spec(self, fps: float | None = None) -> InputSpec:
        return InputSpec(color="gray", height=ANALYSIS[1], width=ANALYSIS[0], fps=fps,
                         motion=f"attributes:{self.config['slots']}")

    @property
    def clip_length(self) -> int:
        return 1

    @property
    def warmup_frames(self) -> int:
        from edge_vad.data.objects import WARMUP

        return WARMUP  # the backgrounds are being learnt: no objects yet, no score

    def state_specs(self) -> list[StateSpec]:
        return []

    def configure_optimizers(self) -> dict:
        return {}

    def training_step(self, clips, optimizers, epoch) -> dict[str, float]:
        """Nothing to learn by gradient (the density is fitted after the loop): counts the objects seen."""
        return {"objects": float(clips[..., 0].sum(dim=(1, 2)).mean())}

    # --- fitting -----------------------------------------------------------------------------------
    @torch.no_grad()
    def fit_training_statistics(self, dataset) -> None:
        """The bank: every normal object of the training frames (subsampled, seeded, to ``bank``)."""
        rows = torch.cat([seg.reshape(-1, seg.shape[-1]) for seg in dataset.segments])
        objects = rows[rows[:, 0] > 0.5, 1:] / self.units
        if len(objects) < 2 * self.config["k"]:
            raise ValueError(f"only {len(objects)} objects in the training frames: too few to fit a density")
        if len(objects) > self.bank.shape[0]:
            pick = torch.randperm(len(objects), generator=torch.Generator().manual_seed(0))[: self.bank.shape[0]]
            objects = objects[pick]
        n = len(objects)
        self.bank.zero_()
        self.bank[:n] = objects
        self.filled.fill_(n)
        d = self._distances(objects, objects[:n], exclude_self=True)
        self.norm.fill_(float(d.median().clamp_min(1e-3)))

    def _distances(self, q: torch.Tensor, bank: torch.Tensor, exclude_self: bool = False) -> torch.Tensor:
        d2 = (q * q).sum(-1, keepdim=True) - 2 * q @ bank.T + (bank * bank).sum(-1)
        if exclude_self:
            d2 = d2 + torch.eye(len(q)) * 1e12
        k = min(int(self.config["k"]), bank.shape[0])
        return torch.topk(d2.clamp_min(0), k, dim=-1, largest=False).values.mean(-1).sqrt()

    # --- scoring -----------------------------------------------------------------------------------
    def score_table(self, table: torch.Tensor):
        """table B×K×F → (error B, error_map B×1×1×K, why B×K×A)."""
        b, k, _ = table.shape
        valid = table[..., 0]
        q = table[..., 1:] / self.units  # B×K×A
        # The filled rows only; exported, their count is a constant of the graph.
        bank = self.bank[: int(self.filled)]
        flat = q.reshape(b * k, -1)
        d2 = (flat * flat).sum(-1, keepdim=True) - 2 * flat @ bank.T + (bank * bank).sum(-1)
        d2 = d2.clamp_min(0)
        near, idx = torch.topk(d2, int(self.config["k"]), dim=-1, largest=False)
        score = (near.mean(-1).sqrt() / self.norm).reshape(b, k) * valid
        nearest = bank[idx[:, 0]].reshape(b, k, -1)
        why = (q - nearest).abs() * valid.unsqueeze(-1)
        return score.max(dim=1).values, score.reshape(b, 1, 1, k), why

    def score_windows(self, clips: torch.Tensor) -> dict[str, torch.Tensor]:
        error, error_map, _ = self.score_table(clips[:, -1])
        return {"error": error, "error_map": error_map}

    def step_module(self) -> nn.Module:
        return AttrStep(self)


class AttrStep(nn.Module):
    input_names = ("frame",)
    output_names = ("error", "error_map", "why")

    def __init__(self, model: ObjAttr):
        super().__init__()
        self.model = model

    def forward(self, frame: torch.Tensor):
        return self.model.score_table(frame)


def build(config: dict[str, Any]) -> ObjAttr:
    return ObjAttr(config)


def describe_object(attributes: list[float], why: list[float]) -> str:
    """One line for an alert: the attribute furthest from normal, and the object's values."""
    i = int(np.argmax(why))
    names = {"x": "position", "y": "position", "log_height": "size", "log_width": "size", "speed": "speed",
             "stillness": "stillness"}
    return f"{names[ATTRIBUTES[i]]} ({ATTRIBUTES[i]} {attributes[i]:.2f}, {why[i]:.1f} units from any normal object)"
