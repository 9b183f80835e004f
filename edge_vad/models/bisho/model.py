"""Bi-directional SHO-ConvLSTM-AE predictor of Shen, Ouyang, Sanchez (torch side).

One direction is a ConvLSTM auto-encoder applied frame by frame:

    encoder  x → [Conv s2 + BN + LReLU → (attention) → ConvLSTM] × 3
    decoder  [Deconv s2 + BN + LReLU → (attention of the same level) → SHO-ConvLSTM(H^e)] × 2
             → Deconv s2 + BN + LReLU  → feature map at full size

The encoder's top ConvLSTM is the bottleneck; the two decoder levels below it
are SHO-ConvLSTMs fed by the encoder hidden state of the same size. Fed X_t,
a direction emits a feature for X̄_{t+n}. The forward AE runs X_1…X_T, the
backward AE X_T…X_1; their features for the same target are concatenated and
mapped to the image by a 3×3 conv (tanh, the frames are in [−1, 1]).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from edge_vad.data.spec import InputSpec
from edge_vad.errors import EdgeVadError
from edge_vad.models.base import StateSpec, VadModel
from edge_vad.models.layers.convlstm import PeepholeConvLSTMCell
from edge_vad.models.layers.sho_convlstm import SHOConvLSTMCell

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]


def _blur(x: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    c = x.shape[1]
    return F.conv2d(x, window.expand(c, 1, *window.shape[-2:]), padding=window.shape[-1] // 2, groups=c)


def ssim(a: torch.Tensor, b: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """Mean SSIM of images in [0, 1] (Wang et al., Gaussian 11×11, σ 1.5)."""
    c1, c2 = 0.01**2, 0.03**2
    mu_a, mu_b = _blur(a, window), _blur(b, window)
    var_a = _blur(a * a, window) - mu_a**2
    var_b = _blur(b * b, window) - mu_b**2
    cov = _blur(a * b, window) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return s.mean()


class MinMaxAttention(nn.Module):
    """Z_t = W²⊗tanh(W¹⊗[X_t, X_{t−1}] + b) (eq. 2), min–max normalised per feature map (eq. 3)."""

    def __init__(self, channels: int, kernel: int = 3):
        super().__init__()
        self.w1 = nn.Conv2d(2 * channels, channels, kernel, padding=kernel // 2)
        self.w2 = nn.Conv2d(channels, channels, kernel, padding=kernel // 2, bias=False)

    def forward(self, x: torch.Tensor, x_prev: torch.Tensor) -> torch.Tensor:
        z = self.w2(torch.tanh(self.w1(torch.cat([x, x_prev], dim=1))))
        lo = z.amin(dim=(2, 3), keepdim=True)
        hi = z.amax(dim=(2, 3), keepdim=True)
        return (z - lo) / (hi - lo + 1e-6)


def _conv_bn(cin: int, cout: int, k: int, transpose: bool = False) -> nn.Sequential:
    conv = (nn.ConvTranspose2d(cin, cout, k, 2, padding=k // 2, output_padding=1) if transpose
            else nn.Conv2d(cin, cout, k, 2, padding=k // 2))
    return nn.Sequential(conv, nn.BatchNorm2d(cout))


class DirectionalAE(nn.Module):
    """One ConvLSTM-AE; ``step`` consumes one frame and updates its recurrent state."""

    def __init__(self, ch_in: int, hidden: list[int], size: int, lstm_k: int, conv_k: int, sho: bool,
                 attention: bool, slope: float):
        super().__init__()
        h1, h2, h3 = hidden
        s1, s2, s3 = size // 2, size // 4, size // 8
        self.sizes = (s1, s2, s3)
        self.hidden = (h1, h2, h3)
        self.slope = slope
        self.sho = sho
        self.attention = attention
        self.down = nn.ModuleList([_conv_bn(ch_in, h1, conv_k), _conv_bn(h1, h2, conv_k), _conv_bn(h2, h3, conv_k)])
        self.enc = nn.ModuleList([PeepholeConvLSTMCell(h, h, (s, s), lstm_k) for h, s in zip(self.hidden, self.sizes)])
        self.att = nn.ModuleList([MinMaxAttention(h, conv_k) for h in self.hidden]) if attention else None
        # Decoder levels 2 and 1 (sizes s2, s1), fed from the level above.
        self.up = nn.ModuleList([_conv_bn(h3, h2, conv_k, True), _conv_bn(h2, h1, conv_k, True), _conv_bn(h1, h1, conv_k, True)])
        if sho:
            self.dec = nn.ModuleList([SHOConvLSTMCell(h2, h2, h2, (s2, s2), lstm_k), SHOConvLSTMCell(h1, h1, h1, (s1, s1), lstm_k)])
        else:
            self.dec = nn.ModuleList([PeepholeConvLSTMCell(h2, h2, (s2, s2), lstm_k), PeepholeConvLSTMCell(h1, h1, (s1, s1), lstm_k)])

    def init_state(self, b: int, ref: torch.Tensor, carried: bool = False) -> dict:
        z = ref.new_zeros
        enc = [(z(b, h, s, s), z(b, h, s, s)) for h, s in zip(self.hidden, self.sizes)]
        dec = [(z(b, h, s, s), z(b, h, s, s)) for h, s in zip(self.hidden[1::-1], self.sizes[1::-1])]
        # A carried stream starts from zeros in training and on the camera alike; a window's first
        # step has no X_{t−1} and stands in for it itself.
        prev = [z(b, h, s, s) for h, s in zip(self.hidden, self.sizes)] if carried else [None, None, None]
        return {"enc": enc, "dec": dec, "prev": prev}

    def state_shapes(self) -> list[tuple[str, tuple[int, int, int]]]:
        """The carried state, flattened in the order of ``flatten``: names and per-camera shapes."""
        out = []
        for lvl, (h, s) in enumerate(zip(self.hidden, self.sizes), start=1):
            out += [(f"enc{lvl}_h", (h, s, s)), (f"enc{lvl}_c", (h, s, s))]
        for lvl, (h, s) in zip((2, 1), zip(self.hidden[1::-1], self.sizes[1::-1])):
            out += [(f"dec{lvl}_h", (h, s, s)), (f"dec{lvl}_c", (h, s, s))]
        return out + [(f"prev{lvl}", (h, s, s)) for lvl, (h, s) in enumerate(zip(self.hidden, self.sizes), start=1)]

    @staticmethod
    def flatten(st: dict) -> list[torch.Tensor]:
        return [t for pair in st["enc"] + st["dec"] for t in pair] + list(st["prev"])

    @staticmethod
    def unflatten(tensors) -> dict:
        t = list(tensors)
        return {"enc": [(t[0], t[1]), (t[2], t[3]), (t[4], t[5])], "dec": [(t[6], t[7]), (t[8], t[9])],
                "prev": t[10:13]}

    def _act(self, x):
        return F.leaky_relu(x, self.slope)

    def step(self, x: torch.Tensor, st: dict) -> torch.Tensor:
        masks, h_enc = [], []
        feat = x
        for lvl in range(3):
            feat = self._act(self.down[lvl](feat))
            if self.att is not None:
                # At the clip's first step there is no X_{t−1}; the step itself stands in (no change).
                prev = st["prev"][lvl] if st["prev"][lvl] is not None else feat
                a = self.att[lvl](feat, prev)
                st["prev"][lvl] = feat
                masks.append(a)
                inp = a * feat
            else:
                inp = feat
            h, c = self.enc[lvl](inp, *st["enc"][lvl])
            st["enc"][lvl] = (h, c)
            h_enc.append(h)
            feat = h
        y = h_enc[2]
        for j, lvl in enumerate((1, 0)):
            y = self._act(self.up[j](y))
            if masks:
                # The attention mask of the encoder level of the same size (regions shift little).
                y = masks[lvl] * y
            cell = self.dec[j]
            h, c = cell(y, h_enc[lvl], *st["dec"][j]) if self.sho else cell(y, *st["dec"][j])
            st["dec"][j] = (h, c)
            y = h
        return self._act(self.up[2](y))


class Bisho(VadModel):
    name = "bisho"
    paper_score = ("MAE between the 5th prediction (frame n = 7 after the 5th input) and that frame, "
                   "on the [0, 1] scale (graph output 'error'; eq. 4)")

    def __init__(self, config: dict[str, Any]):
        super().__init__(config)
        c = self.config
        self.T, self.n, self.k = int(c["T"]), int(c["n"]), int(c["score_index"])
        if not 1 <= self.k <= self.T:
            raise EdgeVadError(f"bisho: score_index must lie in 1..T={self.T}, not {self.k}")
        if c["size"] % 8:
            raise EdgeVadError(f"bisho: size must be a multiple of 8 (three stride-2 levels), not {c['size']}")
        ch = 1 if c["color"] == "gray" else 3
        self.bidirectional = bool(c["bidirectional"])
        args = (ch, list(c["hidden"]), int(c["size"]), int(c["lstm_kernel"]), int(c["conv_kernel"]), bool(c["sho"]),
                bool(c["attention"]), float(c["leaky_slope"]))
        self.fwd = DirectionalAE(*args)
        self.bwd = DirectionalAE(*args) if self.bidirectional else None
        h1 = c["hidden"][0]
        self.head = nn.Conv2d(h1 * (2 if self.bidirectional else 1), ch, int(c["conv_kernel"]), padding=int(c["conv_kernel"]) // 2)
        self.register_buffer("window", gaussian_window(), persistent=False)
        # Not the paper's network: predict the change from the newest input (README.md).
        self.residual = bool(c.get("residual", False))
        # "carried": the deployed step carries the forward AE's state from frame to frame (one AE
        # step per frame) instead of running a window from zero state (README.md, "Streaming").
        stream = c.get("stream", "window")
        if stream not in ("window", "carried"):
            raise EdgeVadError(f"bisho: stream must be 'window' or 'carried', not {stream!r}")
        self.carried = stream == "carried"
        if self.carried and self.bidirectional:
            raise EdgeVadError("bisho: stream='carried' needs bidirectional=false: the backward AE starts at the "
                               "newest frame, so its state cannot be carried from one frame to the next")
        if self.carried and self.k != self.T:
            raise EdgeVadError(f"bisho: with stream='carried' the scored prediction is the newest one, "
                               f"score_index = T = {self.T}, not {self.k}")
        if self.carried and int(c.get("sequence", 0)) < 2 * self.T + self.n:
            raise EdgeVadError(f"bisho: sequence must be at least 2·T + n = {2 * self.T + self.n} frames, "
                               f"not {c.get('sequence')!r}")

    def input_spec(self, fps: float | None = None) -> InputSpec:
        size = self.config["size"]
        return InputSpec(color=self.config["color"], height=size, width=size, low=-1.0, high=1.0, fps=fps)

    @property
    def clip_length(self) -> int:
        # Scoring window: inputs X_1..X_T and the target X_{k+n} of the k-th prediction.
        return self.k + self.n

    @property
    def train_clip_length(self) -> int:
        if self.carried:
            return int(self.config["sequence"])
        # Training sees every prediction X̄_{1+n}..X̄_{T+n}.
        return self.T + self.n

    @property
    def train_clip_every(self) -> int:
        return self.T if self.carried else 1

    @property
    def carries_state(self) -> bool:
        return self.carried

    def predict(self, feat: torch.Tensor, newest: torch.Tensor) -> torch.Tensor:
        """The directions' features (concatenated) → the predicted frame; ``newest`` is its residual base."""
        out = torch.tanh(self.head(feat))
        return newest + out if self.residual else out

    def forward(self, inputs: torch.Tensor, upto: int | None = None) -> torch.Tensor:
        """inputs B×T×C×H×W → predictions of X_{t+n}; with ``upto`` = k only the k-th (B×1×C×H×W).

        The k-th prediction needs the forward direction over X_1..X_k and the
        backward one over X_T..X_k only, so scoring runs T+1 steps instead of 2·T.
        """
        b, t_len = inputs.shape[:2]
        targets = range(t_len) if upto is None else [upto - 1]
        last = max(targets)
        sf = self.fwd.init_state(b, inputs)
        f_feats = {}
        for t in range(last + 1):
            f = self.fwd.step(inputs[:, t], sf)
            if t in targets:
                f_feats[t] = f
        feats = {t: [f_feats[t]] for t in targets}
        if self.bwd is not None:
            sb = self.bwd.init_state(b, inputs)
            first = min(targets)
            for t in range(t_len - 1, first - 1, -1):
                f = self.bwd.step(inputs[:, t], sb)
                if t in feats:
                    feats[t].append(f)
        # With `residual`, each target's base is the newest input before it (README.md, "residual").
        return torch.stack([self.predict(torch.cat(feats[t], dim=1), inputs[:, min(t + self.n - 1, t_len - 1)])
                            for t in targets], dim=1)

    def loss(self, clips):
        if self.carried:
            return self._sequence_loss(clips)
        inputs = clips[:, : self.T]
        target = clips[:, self.n : self.n + self.T]
        return self._image_loss(self(inputs), target)

    def _sequence_loss(self, clips):
        """The forward AE's state carried along a sequence, as the deployed step carries it; every
        prediction from the T-th input on (a state that has seen a window's worth) is in the loss."""
        st = self.fwd.init_state(clips.shape[0], clips, carried=True)
        preds, targets = [], []
        for t in range(clips.shape[1] - self.n):
            feat = self.fwd.step(clips[:, t], st)
            if t >= self.T - 1:
                preds.append(self.predict(feat, clips[:, t]))
                targets.append(clips[:, t + self.n])
        return self._image_loss(torch.stack(preds, 1), torch.stack(targets, 1))

    def _image_loss(self, pred, target):
        p = (pred.flatten(0, 1) + 1) / 2
        y = (target.flatten(0, 1) + 1) / 2
        s = ssim(p, y, self.window)
        # Eq. 6: L_ssim + λ·(W ⊗ L_1): the absolute error filtered with the SSIM
        # Gaussian; the filter's bias is a constant and drops out of the gradient.
        l1 = _blur((p - y).abs(), self.window).mean()
        loss = (1 - s) + self.config["lambda_l1"] * l1
        return loss, {"ssim": float(s.detach()), "l1": float(l1.detach())}

    def score_windows(self, clips):
        pred = self(clips[:, : self.T], upto=self.k)[:, 0]
        return self.score(pred, clips[:, self.k + self.n - 1])

    @staticmethod
    def score(pred, target):
        # MAE on the [0, 1] scale (eq. 4); the map is its per-pixel term.
        error_map = ((pred - target).abs() / 2).mean(dim=1, keepdim=True)
        return {"error": error_map.flatten(1).mean(1), "error_map": error_map}

    def state_specs(self):
        if not self.carried:
            return super().state_specs()
        ch, size = self.input_spec().channels, self.config["size"]
        return [StateSpec(n, s) for n, s in self.fwd.state_shapes()] + [StateSpec("predicted", (self.n * ch, size, size))]

    def step_module(self):
        return CarriedStep(self) if self.carried else super().step_module()


class CarriedStep(nn.Module):
    """Streaming step with the forward AE's state carried: one AE step per frame instead of T.

    ``predicted`` queues the predictions still waiting for their frame: its first frame is the
    prediction of the frame now arriving, made n frames ago.
    """

    def __init__(self, model: Bisho):
        super().__init__()
        self.model = model
        self.channels = model.input_spec().channels
        names = [s.name for s in model.state_specs()]
        self.input_names = ("frame", *names)
        self.output_names = ("error", "error_map", *(f"{n}_out" for n in names))

    def forward(self, frame, *state):
        m, ch = self.model, self.channels
        predicted = state[-1]
        out = m.score(predicted[:, :ch], frame)
        st = m.fwd.unflatten(state[:-1])
        ahead = m.predict(m.fwd.step(frame, st), frame)
        return (out["error"], out["error_map"], *m.fwd.flatten(st), torch.cat([predicted[:, ch:], ahead], dim=1))


def build(config: dict[str, Any]) -> Bisho:
    return Bisho(config)
