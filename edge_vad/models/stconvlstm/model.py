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
from edge_vad.models.base import StateSpec, VadModel
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
        # "carried": the deployed step carries the encoder's state from frame to
        # frame (one encoder step per frame) instead of re-encoding a window from
        # zero; training then runs over longer sequences (README.md, "Streaming").
        self.carried = c.get("stream", "window") == "carried"
        if c.get("stream", "window") not in ("window", "carried"):
            raise EdgeVadError(f"stconvlstm: stream must be 'window' or 'carried', not {c['stream']!r}")
        if self.carried and self.mode != "prediction":
            raise EdgeVadError("stconvlstm: stream='carried' needs mode='prediction' (a reconstruction has nothing to carry)")
        if self.carried and c.get("score_horizons") is not None and len(c["score_horizons"]) != 1:
            raise EdgeVadError("stconvlstm: with stream='carried', score_horizons names one predicted frame, "
                               f"not {c['score_horizons']!r}")
        if self.carried and int(c.get("sequence", 0)) < 2 * self.tau:
            raise EdgeVadError(f"stconvlstm: sequence must be at least 2·tau = {2 * self.tau} frames, not {c.get('sequence')!r}")
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
        # Also with stream='carried': the window is how the paper scores a frame,
        # the reference the speed benchmark compares the carried step with.
        return 2 * self.tau if self.mode == "prediction" else self.tau

    @property
    def train_clip_length(self) -> int:
        return int(self.config["sequence"]) if self.carried else self.clip_length

    @property
    def train_clip_every(self) -> int:
        return self.tau if self.carried else 1

    @property
    def horizon(self) -> int:
        """How many frames ahead the carried step's scored prediction was made (1 = the next frame)."""
        h = (self.config.get("score_horizons") or [0])[0]
        return h % self.tau + 1

    @property
    def warmup_frames(self) -> int:
        if self.carried:
            # The scored prediction must come from a state that has seen τ frames, as in a window.
            return self.tau + self.horizon - 1
        return self.clip_length - 1

    @property
    def carries_state(self) -> bool:
        return self.carried

    def _act(self, x):
        return F.leaky_relu(x, self.slope)

    def zero_state(self, observed: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        z = observed.new_zeros
        b = observed.shape[0]
        return [(z(b, cell.hidden, s, s), z(b, cell.hidden, s, s)) for cell, s in zip((self.enc1, self.enc2, self.enc3), self._sizes)]

    def encode(self, frame: torch.Tensor, state):
        """One encoder step: frame B×C×H×W and the three levels' (h, c) → new state."""
        (h1, c1), (h2, c2), (h3, c3) = state
        h1, c1 = self.enc1(self._act(self.conv1(frame)), h1, c1)
        h2, c2 = self.enc2(self._act(self.conv2(h1)), h2, c2)
        h3, c3 = self.enc3(self._act(self.conv3(h2)), h3, c3)
        return [(h1, c1), (h2, c2), (h3, c3)]

    def forecast(self, state, last: torch.Tensor, steps: int) -> list[torch.Tensor]:
        """``steps`` future frames from the encoder's state; ``last`` is the last observed frame."""
        (h1, c1), (h2, c2), (h3, c3) = state
        outputs = []
        base = last if self.residual else 0.0
        for _ in range(steps):
            h3, c3 = self.dec3(None, h3, c3)
            h2, c2 = self.dec2(self._act(self.deconv1(h3)), h2, c2)
            h1, c1 = self.dec1(self._act(self.deconv2(h2)), h1, c1)
            outputs.append(base + self.deconv3(h1))
        return outputs

    def forward(self, observed: torch.Tensor) -> torch.Tensor:
        """observed B×τ×C×H×W → output B×τ×C×H×W (future frames, or the input reversed)."""
        state = self.zero_state(observed)
        for t in range(observed.shape[1]):
            state = self.encode(observed[:, t], state)
        return torch.stack(self.forecast(state, observed[:, -1], self.tau), dim=1)

    def _split(self, clips: torch.Tensor):
        observed = clips[:, : self.tau]
        if self.mode == "prediction":
            return observed, clips[:, self.tau : 2 * self.tau]
        return observed, torch.flip(observed, dims=[1])

    def loss(self, clips):
        if self.carried:
            return self._sequence_loss(clips)
        observed, target = self._split(clips)
        pred = self(observed)
        # Eq. 1: 1/(2Nτ) Σ‖θ−θ̂‖² summed over pixels; weight decay is the optimiser's.
        n, tau = clips.shape[0], self.tau
        loss = (pred - target).pow(2).sum() / (2 * n * tau)
        return loss, {"mse": float((pred - target).pow(2).mean().detach())}

    def _sequence_loss(self, clips):
        """Eq. 1 averaged over every position of a sequence: the encoder's state is
        carried along it, and from the τ-th frame on it forecasts the next τ frames,
        as the deployed step does."""
        n, length, tau = clips.shape[0], clips.shape[1], self.tau
        state, total, sq, count = self.zero_state(clips[:, 0]), 0.0, 0.0, 0
        for t in range(length - tau):
            state = self.encode(clips[:, t], state)
            if t < tau - 1:
                continue
            pred = torch.stack(self.forecast(state, clips[:, t], tau), dim=1)
            err = (pred - clips[:, t + 1 : t + 1 + tau]).pow(2)
            total = total + err.sum()
            sq += float(err.mean().detach())
            count += 1
        loss = total / (2 * n * tau * count)
        return loss, {"mse": sq / count}

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
        return {"error": error, "error_map": self.per_pixel(diff).sum(dim=(1, 2)).unsqueeze(1)}

    def per_pixel(self, diff: torch.Tensor) -> torch.Tensor:
        """The streaming map's per-pixel error (``score_map``: |·| or (·)²)."""
        return diff.abs() if self.config.get("score_map", "sq") == "abs" else diff.pow(2)


    def state_specs(self):
        if not self.carried:
            return super().state_specs()
        ch, size = self.input_spec().channels, self.config["size"]
        specs = []
        for level, (cell, s) in enumerate(zip((self.enc1, self.enc2, self.enc3), self._sizes), start=1):
            specs += [StateSpec(f"h{level}", (cell.hidden, s, s)), StateSpec(f"c{level}", (cell.hidden, s, s))]
        return specs + [StateSpec("predicted", (self.horizon * ch, size, size))]

    def step_module(self):
        return CarriedStep(self) if self.carried else super().step_module()


class CarriedStep(nn.Module):
    """Streaming step with the encoder's state carried: one encoder step per frame
    and ``horizon`` forecaster steps, instead of a whole window from zero state.

    ``predicted`` queues the forecasts still waiting for their frame: its first
    frame is the forecast of the frame now arriving, made ``horizon`` frames ago.
    """

    input_names = ("frame", "h1", "c1", "h2", "c2", "h3", "c3", "predicted")
    output_names = ("error", "error_map", "h1_out", "c1_out", "h2_out", "c2_out", "h3_out", "c3_out", "predicted_out")

    def __init__(self, model: StConvLSTM):
        super().__init__()
        self.model = model
        self.channels = model.input_spec().channels

    def forward(self, frame, h1, c1, h2, c2, h3, c3, predicted):
        m, ch = self.model, self.channels
        diff = frame - predicted[:, :ch]
        error = diff.pow(2).flatten(1).sum(-1).sqrt()
        error_map = m.per_pixel(diff).sum(dim=1, keepdim=True)
        state = m.encode(frame, [(h1, c1), (h2, c2), (h3, c3)])
        ahead = m.forecast(state, frame, m.horizon)[-1]
        (h1, c1), (h2, c2), (h3, c3) = state
        return error, error_map, h1, c1, h2, c2, h3, c3, torch.cat([predicted[:, ch:], ahead], dim=1)


def build(config: dict[str, Any]) -> StConvLSTM:
    return StConvLSTM(config)
