"""Prototype-guided memory two-branch AE of Lai, Han, Wang (torch side).

Shared encoder: MNAD's U-Net encoder over the t input frames stacked on the
channel axis; its last map is the query map z. The memory transforms every
query into ẑ (a softmax-weighted average of all items by cosine). Two decoders
take ẑ: the future-frame decoder with U-Net skips predicts I_{t+1} (tanh), the
RGB-difference decoder without skips generates x_clips − I_{t+1} (t·C channels,
linear: differences span [−2, 2]).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from edge_vad.data.spec import InputSpec
from edge_vad.errors import EdgeVadError
from edge_vad.models.base import StateSpec, VadModel
from edge_vad.models.protomem import memory as mem


def _basic(cin: int, cout: int, last_act: bool = True) -> nn.Sequential:
    """MNAD's ``Basic`` (conv-BN-ReLU ×2); ``Basic_`` ends with the bare conv."""
    layers = [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=False),
              nn.Conv2d(cout, cout, 3, padding=1)]
    if last_act:
        layers += [nn.BatchNorm2d(cout), nn.ReLU(inplace=False)]
    return nn.Sequential(*layers)


def _up(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, 3, 2, padding=1, output_padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=False))


def _gen(cin: int, mid: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, mid, 3, padding=1), nn.BatchNorm2d(mid), nn.ReLU(inplace=False),
                         nn.Conv2d(mid, mid, 3, padding=1), nn.BatchNorm2d(mid), nn.ReLU(inplace=False),
                         nn.Conv2d(mid, cout, 3, padding=1))


class Encoder(nn.Module):
    def __init__(self, cin: int, ch: list[int]):
        super().__init__()
        c1, c2, c3, c4 = ch
        self.b1, self.b2, self.b3 = _basic(cin, c1), _basic(c1, c2), _basic(c2, c3)
        self.b4 = _basic(c3, c4, last_act=False)

    def forward(self, x):
        s1 = self.b1(x)
        s2 = self.b2(F.max_pool2d(s1, 2))
        s3 = self.b3(F.max_pool2d(s2, 2))
        return self.b4(F.max_pool2d(s3, 2)), (s1, s2, s3)


class Decoder(nn.Module):
    """MNAD's decoder; ``skips=False`` gives the paper's RGB-difference branch."""

    def __init__(self, ch: list[int], cout: int, skips: bool, tanh: bool):
        super().__init__()
        c1, c2, c3, c4 = ch
        k = 2 if skips else 1
        self.skips, self.tanh = skips, tanh
        self.b4 = _basic(c4, c4)
        self.u3, self.b3 = _up(c4, c3), _basic(k * c3, c3)
        self.u2, self.b2 = _up(c3, c2), _basic(k * c2, c2)
        self.u1 = _up(c2, c1)
        self.gen = _gen(k * c1, c1, cout)

    def forward(self, z, skips):
        s1, s2, s3 = skips
        cat = (lambda a, s: torch.cat([s, a], 1)) if self.skips else (lambda a, s: a)
        x = self.b3(cat(self.u3(self.b4(z)), s3))
        x = self.b2(cat(self.u2(x), s2))
        x = self.gen(cat(self.u1(x), s1))
        return torch.tanh(x) if self.tanh else x


class ProtoMem(VadModel):
    name = "protomem"
    paper_score = ("1 − S = γ(1 − P) + (1 − γ)D (eq. 25 as an error, γ = 0.6), P = PSNR and D = distance to the "
                   "nearest prototype, min–max normalised over the training clips (graph output 'error')")

    def __init__(self, config: dict[str, Any]):
        super().__init__(config)
        c = self.config
        if c["size"] % 8:
            raise EdgeVadError(f"protomem: size must be a multiple of 8 (three poolings), not {c['size']}")
        self.t = int(c["t"])
        self.ch_img = 1 if c["color"] == "gray" else 3
        ch = list(c["channels"])
        self.encoder = Encoder(self.t * self.ch_img, ch)
        self.pred_decoder = Decoder(ch, self.ch_img, skips=True, tanh=True)
        self.diff_decoder = Decoder(ch, self.t * self.ch_img, skips=False, tanh=False)
        # Items get gradient from L_dis and the decoders, and the eq. 11–12 update after every step.
        self.memory = nn.Parameter(F.normalize(torch.rand(int(c["memory_items"]), ch[3]), dim=-1))
        # Range [min, max] of PSNR and DIST over the training clips (fit after training):
        # eq. 21 and 24 normalise with these instead of the test video's own extremes.
        self.register_buffer("psnr_range", torch.tensor([0.0, 1.0]))
        self.register_buffer("dist_range", torch.tensor([0.0, 1.0]))

    def input_spec(self, fps: float | None = None) -> InputSpec:
        size = self.config["size"]
        return InputSpec(color=self.config["color"], height=size, width=size, low=-1.0, high=1.0, fps=fps)

    @property
    def clip_length(self) -> int:
        return self.t + 1

    def forward(self, inputs: torch.Tensor, memory: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """inputs B×t×C×H×W → prediction, RGB difference, queries and their similarities."""
        memory = self.memory if memory is None else memory
        b = inputs.shape[0]
        z, skips = self.encoder(inputs.flatten(1, 2))
        q = mem.queries(z)
        z_hat, d = mem.read(q, memory)
        z_hat = z_hat.transpose(1, 2).reshape(z.shape)
        return {
            "pred": self.pred_decoder(z_hat, skips),
            "diff": self.diff_decoder(z_hat, skips),
            "q": q,
            "d": d,
            "hw": z.shape[-2:],
            "b": b,
        }

    def loss(self, clips):
        loss, logs, _ = self._loss(clips)
        return loss, logs

    def _loss(self, clips):
        inputs, target = clips[:, : self.t], clips[:, self.t]
        out = self(inputs)
        l_pred = (out["pred"] - target).pow(2).mean()  # eq. 6
        diff_true = (inputs - target.unsqueeze(1)).flatten(1, 2)  # eq. 5: x_clips − I_{t+1}
        l_diff = (out["diff"] - diff_true).pow(2).mean()  # eq. 7
        l_dis = mem.discriminative_loss(out["q"], self.memory, out["d"])  # eq. 17
        c = self.config
        loss = c["lambda_pred"] * l_pred + c["lambda_diff"] * l_diff + c["lambda_dis"] * l_dis  # eq. 18
        return loss, {"pred": float(l_pred.detach()), "diff": float(l_diff.detach()), "dis": float(l_dis.detach())}, out

    def training_step(self, clips, optimizers, epoch):
        loss, logs, out = self._loss(clips)
        self.optimize(loss, optimizers["main"])
        with torch.no_grad():
            self.memory.copy_(mem.update(self.memory, out["q"].detach(), self.config["update_scope"]))
        return {"loss": float(loss.detach()), **logs}

    def _terms(self, out, target, memory):
        """PSNR (eq. 19–20, on the [0, 1] scale), DIST (eq. 22) and their maps."""
        sq = ((out["pred"] - target) / 2).pow(2).mean(dim=1, keepdim=True)  # B×1×H×W
        psnr = 10 * torch.log10(1.0 / sq.flatten(1).mean(1).clamp_min(1e-10))
        dist = mem.nearest_distance(out["q"], memory, out["d"])  # B×K
        return psnr, dist.mean(1), sq, dist.reshape(out["b"], 1, *out["hw"])

    @torch.no_grad()
    def fit_training_statistics(self, dataset, max_clips: int = 512) -> None:
        """Range of PSNR and DIST over the training clips, with the final weights
        (called by the trainer after the last epoch)."""
        was = self.training
        self.eval()
        step = max(1, len(dataset) // max_clips)
        idx = list(range(0, len(dataset), step))
        psnrs, dists = [], []
        for i in range(0, len(idx), 16):
            clips = torch.stack([dataset[j] for j in idx[i : i + 16]])
            psnr, dist, _, _ = self.score_terms(clips)
            psnrs.append(psnr)
            dists.append(dist)
        for buf, x in ((self.psnr_range, torch.cat(psnrs)), (self.dist_range, torch.cat(dists))):
            buf.copy_(torch.stack([x.min(), torch.maximum(x.max(), x.min() + 1e-6)]))
        self.train(was)

    def score_terms(self, clips, memory=None):
        memory = self.memory if memory is None else memory
        out = self(clips[:, : self.t], memory)
        return self._terms(out, clips[:, self.t], memory)

    def score_windows(self, clips, memory=None):
        psnr, dist, sq, _ = self.score_terms(clips, memory)
        g = float(self.config["gamma"])
        # Eq. 25 as an error, 1 − S = γ(1 − P) + (1 − γ)D (larger = more anomalous), with
        # P and D min–max normalised over the training clips (eq. 21, 24) rather than the
        # test video, which a live camera cannot see in advance. 0 = the best training clip.
        p = (psnr - self.psnr_range[0]) / (self.psnr_range[1] - self.psnr_range[0])
        d = (dist - self.dist_range[0]) / (self.dist_range[1] - self.dist_range[0])
        error = g * (1 - p) + (1 - g) * d
        # The map is the per-pixel RMS error (over channels), not its square: squared,
        # a few walker edges dominate their cell and the streaming score ranked
        # injected anomalies worse on validation footage (0.81 vs 0.84 AUC).
        return {"error": error, "error_map": sq.sqrt()}

    # --- deployment ------------------------------------------------------
    def state_specs(self) -> list[StateSpec]:
        c = self.config
        return [
            StateSpec("frames", (self.t * self.ch_img, c["size"], c["size"])),
            # All-zero rows stand for "the trained prototype": a fresh or reset
            # camera starts from the trained memory without a new init kind.
            StateSpec("memory", tuple(self.memory.shape)),
        ]

    def step_module(self) -> nn.Module:
        return ProtoStep(self)

    @torch.no_grad()
    def gated_update(self, memory: torch.Tensor, clip: torch.Tensor, threshold: float = 0.01) -> torch.Tensor:
        """MNAD's optional test-time update, outside the exported graph: apply eq. 11–12
        with the clip's queries only when its weighted prediction error is below ``threshold``."""
        out = self(clip[:, : self.t], memory)
        e = ((out["pred"] - clip[:, self.t]) / 2).pow(2)
        w = 1 - torch.exp(-e)
        if float((w * e).sum() / w.sum().clamp_min(1e-12)) >= threshold:
            return memory
        return mem.update(memory, out["q"], self.config["update_scope"])


class ProtoStep(nn.Module):
    """Streaming step: the last t frames and the memory items are explicit state."""

    input_names = ("frame", "frames", "memory")
    output_names = ("error", "error_map", "frames_out", "memory_out")

    def __init__(self, model: ProtoMem):
        super().__init__()
        self.model = model
        self.channels = model.ch_img

    def forward(self, frame, frames, memory):
        b, _, h, w = frame.shape
        window = torch.cat([frames.reshape(b, -1, self.channels, h, w), frame.unsqueeze(1)], dim=1)
        trained = self.model.memory.unsqueeze(0).expand_as(memory)
        items = torch.where(memory.abs().sum(-1, keepdim=True) > 0, memory, trained)
        out = self.model.score_windows(window, items)
        return out["error"], out["error_map"], window[:, 1:].reshape(b, -1, h, w), items


def build(config: dict[str, Any]) -> ProtoMem:
    return ProtoMem(config)
