"""ConvLSTM encoder–forecaster of Tran & Hogg (torch side).

Encoder: strided conv → peephole ConvLSTM, three times (16/32/64 channels).
Forecaster (Shi et al. style): each level's ConvLSTM starts from the final
state of the encoder ConvLSTM of the same level; the top one gets no input,
lower ones get the deconvolved output of the level above; the last deconv
gives the frame (linear output).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from edge_vad.errors import EdgeVadError
from edge_vad.models.base import VadModel
from edge_vad.models.layers.convlstm import PeepholeConvLSTMCell

# (kernel, stride) of the three strided convolutions, as published.
_DOWN = ((11, 4), (3, 2), (3, 2))


def _chain(size: int) -> list[int] | None:
    """Spatial size after each strided conv, or None if the deconvs cannot invert them exactly."""
    sizes, s = [], size
    for k, st in _DOWN:
        if s < k or (s - k) % st:
            return None
        s = (s - k) // st + 1
        sizes.append(s)
    back = sizes[-1]
    for (k, st), target in zip(reversed(_DOWN), [sizes[1], sizes[0], size]):
        back = (back - 1) * st + k
        if back != target:
            return None
    return sizes


def level_sizes(size: int) -> list[int]:
    sizes = _chain(size)
    if sizes is None:
        valid = [n for n in range(64, 400) if _chain(n)]
        raise EdgeVadError(
            f"stconvlstm: input size {size} does not pass the strided encoder exactly; "
            f"valid sizes include {', '.join(map(str, valid[:12]))}"
        )
    return sizes


class StConvLSTM(VadModel):
    name = "stconvlstm"

    def __init__(self, config: dict[str, Any]):
        super().__init__(config)
        c = self.config
        ch_in = 1 if c["color"] == "gray" else 3
        h1, h2, h3 = c["hidden"]
        s1, s2, s3 = level_sizes(c["size"])
        self.tau = int(c["tau"])
        self.mode = c["mode"]
        if self.mode not in ("prediction", "reconstruction"):
            raise EdgeVadError(f"stconvlstm: mode must be 'prediction' or 'reconstruction', not {self.mode!r}")
        if c.get("score_map", "sq") not in ("sq", "abs"):
            raise EdgeVadError(f"stconvlstm: score_map must be 'sq' or 'abs', not {c['score_map']!r}")
        if c.get("score_horizons") is not None and (
                not c["score_horizons"] or any(not -self.tau <= int(h) < self.tau for h in c["score_horizons"])):
            raise EdgeVadError(f"stconvlstm: score_horizons must list predicted frames in [-{self.tau}, {self.tau - 1}], "
                               f"not {c['score_horizons']!r}")
        self.slope = float(c["leaky_slope"])
        (k1, st1), (k2, st2), (k3, st3) = _DOWN

        self.conv1 = nn.Conv2d(ch_in, h1, k1, st1)
        self.enc1 = PeepholeConvLSTMCell(h1, h1, (s1, s1))
        self.conv2 = nn.Conv2d(h1, h2, k2, st2)
        self.enc2 = PeepholeConvLSTMCell(h2, h2, (s2, s2))
        self.conv3 = nn.Conv2d(h2, h3, k3, st3)
        self.enc3 = PeepholeConvLSTMCell(h3, h3, (s3, s3))

        self.dec3 = PeepholeConvLSTMCell(0, h3, (s3, s3))  # zero input, as in the Caffe net
        self.deconv1 = nn.ConvTranspose2d(h3, h2, k3, st3)
        self.dec2 = PeepholeConvLSTMCell(h2, h2, (s2, s2))
        self.deconv2 = nn.ConvTranspose2d(h2, h1, k2, st2)
        self.dec1 = PeepholeConvLSTMCell(h1, h1, (s1, s1))
        self.deconv3 = nn.ConvTranspose2d(h1, ch_in, k1, st1)
        self._sizes = (s1, s2, s3)
        # "residual": the forecaster predicts the change from the last observed
        # frame instead of the frame itself (edge preset; see README.md).
        self.residual = bool(c.get("residual", False))
        with torch.no_grad():
            # Start the linear output at mid-gray instead of black (or at "no
            # change"): the first epochs then learn motion, not mean brightness.
            self.deconv3.bias.fill_(0.0 if self.residual else 0.5 * (c.get("low", 0.0) + c.get("high", 1.0)))

    @property
    def clip_length(self) -> int:
        return 2 * self.tau if self.mode == "prediction" else self.tau

    def _act(self, x):
        return F.leaky_relu(x, self.slope)

    def forward(self, observed: torch.Tensor) -> torch.Tensor:
        """observed B×τ×C×H×W → output B×τ×C×H×W (future frames, or the input reversed)."""
        b = observed.shape[0]
        z = observed.new_zeros
        hs = [(z(b, cell.hidden, s, s), z(b, cell.hidden, s, s)) for cell, s in zip((self.enc1, self.enc2, self.enc3), self._sizes)]
        (h1, c1), (h2, c2), (h3, c3) = hs
        for t in range(observed.shape[1]):
            h1, c1 = self.enc1(self._act(self.conv1(observed[:, t])), h1, c1)
            h2, c2 = self.enc2(self._act(self.conv2(h1)), h2, c2)
            h3, c3 = self.enc3(self._act(self.conv3(h2)), h3, c3)
        outputs = []
        base = observed[:, -1] if self.residual else 0.0
        for _ in range(self.tau):
            h3, c3 = self.dec3(None, h3, c3)
            h2, c2 = self.dec2(self._act(self.deconv1(h3)), h2, c2)
            h1, c1 = self.dec1(self._act(self.deconv2(h2)), h1, c1)
            outputs.append(base + self.deconv3(h1))
        return torch.stack(outputs, dim=1)

    def _split(self, clips: torch.Tensor):
        observed = clips[:, : self.tau]
        if self.mode == "prediction":
            return observed, clips[:, self.tau : 2 * self.tau]
        return observed, torch.flip(observed, dims=[1])

    def loss(self, clips):
        observed, target = self._split(clips)
        pred = self(observed)
        # Eq. 1: 1/(2Nτ) Σ‖θ−θ̂‖² summed over pixels; weight decay is the optimiser's.
        n, tau = clips.shape[0], self.tau
        loss = (pred - target).pow(2).sum() / (2 * n * tau)
        return loss, {"mse": float((pred - target).pow(2).mean().detach())}

    def score_windows(self, clips):
        observed, target = self._split(clips)
        diff = self(observed) - target
        # Eq. 2: e(t) = Σ_i ‖F̂_i − F_i‖₂ over the τ predicted frames.
        error = diff.pow(2).flatten(2).sum(-1).sqrt().sum(1)
        # The streaming score's map: which predicted frames, and |·| or (·)²
        # (score_horizons / score_map in config.py; chosen on validation footage).
        horizons = self.config.get("score_horizons")
        if horizons is not None:
            diff = diff[:, [h % self.tau for h in horizons]]
        per_pixel = diff.abs() if self.config.get("score_map", "sq") == "abs" else diff.pow(2)
        error_map = per_pixel.sum(dim=(1, 2)).unsqueeze(1)
        return {"error": error, "error_map": error_map}


def build(config: dict[str, Any]) -> StConvLSTM:
    return StConvLSTM(config)
