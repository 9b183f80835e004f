"""STM-AE (torch side): frozen appearance/motion AEs, spatial/temporal memories,
frame-prediction decoder and a PatchGAN discriminator.

Input is the ``flow`` frame tensor of ``edge_vad.data.motion``: appearance
channels followed by the DIS flow into that frame. A window holds k + 1
frames: the first k (and their flows) are observed, the last is predicted.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from edge_vad.data.spec import InputSpec
from edge_vad.errors import EdgeVadError
from edge_vad.models.base import VadModel


def conv_bn(cin: int, cout: int, stride: int = 1, act: str = "lrelu") -> nn.Sequential:
    a = nn.LeakyReLU(0.2, inplace=True) if act == "lrelu" else nn.ReLU(inplace=True)
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1), nn.BatchNorm2d(cout), a)


def up_bn(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), conv_bn(cin, cout, act="relu"))


class Encoder(nn.Sequential):
    """Five 3×3 conv + BN + LeakyReLU layers (LeakyReLU keeps negative features), /8 overall."""

    def __init__(self, cin: int, w: list[int]):
        super().__init__(conv_bn(cin, w[0]), conv_bn(w[0], w[1], 2), conv_bn(w[1], w[2], 2),
                         conv_bn(w[2], w[2], 2), conv_bn(w[2], w[2]))


class Decoder(nn.Sequential):
    """Six 3×3 conv layers back to the input size; the last is linear."""

    def __init__(self, cin: int, w: list[int], cout: int):
        super().__init__(conv_bn(cin, w[2], act="relu"), up_bn(w[2], w[2]), up_bn(w[2], w[1]), up_bn(w[1], w[0]),
                         conv_bn(w[0], w[0], act="relu"), nn.Conv2d(w[0], cout, 3, padding=1))


class AutoEncoder(nn.Module):
    def __init__(self, cin: int, w: list[int]):
        super().__init__()
        self.encoder = Encoder(cin, w)
        self.decoder = Decoder(w[2], w, cin)

    def forward(self, x):
        return self.decoder(self.encoder(x))


class MemoryPool(nn.Module):
    """N items of dimension C; read by softmax over cosine similarity.

    The write (eq. 3–4) runs after each training step outside autograd: each
    item adds its top-k most similar queries, weighted by a softmax over those
    similarities, and is L2-normalised again. The items are also parameters,
    so the memory loss (eq. 9) and the prediction loss refine them.
    """

    def __init__(self, items: int, dim: int, topk: int):
        super().__init__()
        self.topk = topk
        self.items = nn.Parameter(F.normalize(torch.randn(items, dim), dim=1))

    @staticmethod
    def queries(z: torch.Tensor) -> torch.Tensor:
        return F.normalize(z.permute(0, 2, 3, 1).reshape(-1, z.shape[1]), dim=1)

    def read(self, z: torch.Tensor) -> torch.Tensor:
        b, c, h, w = z.shape
        q = self.queries(z)
        m = F.normalize(self.items, dim=1)
        r = F.softmax(q @ m.t(), dim=1) @ m
        return r.reshape(b, h, w, c).permute(0, 3, 1, 2)

    def loss(self, z: torch.Tensor, margin: float) -> torch.Tensor:
        """Compactness to the nearest item and a margin to the second nearest (eq. 9)."""
        q = self.queries(z)
        d = torch.cdist(q, F.normalize(self.items, dim=1)).pow(2)
        two = d.topk(2, dim=1, largest=False).values
        return (two[:, 0] + F.relu(two[:, 0] - two[:, 1] + margin)).mean()

    @torch.no_grad()
    def write(self, z: torch.Tensor) -> None:
        q = self.queries(z)
        m = F.normalize(self.items, dim=1)
        sim = m @ q.t()  # items × queries
        k = min(self.topk, sim.shape[1])
        vals, idx = sim.topk(k, dim=1)
        w = F.softmax(vals, dim=1)
        update = (w.unsqueeze(-1) * q[idx]).sum(1)
        self.items.copy_(F.normalize(m + update, dim=1))


class PatchDiscriminator(nn.Sequential):
    """pix2pix PatchGAN (70×70 receptive field at full width), one score per patch."""

    def __init__(self, cin: int, d: int):
        super().__init__(
            nn.Conv2d(cin, d, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(d, 2 * d, 4, 2, 1), nn.BatchNorm2d(2 * d), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(2 * d, 4 * d, 4, 1, 1), nn.BatchNorm2d(4 * d), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(4 * d, 1, 4, 1, 1),
        )


def salt_and_pepper(x: torch.Tensor, fraction: float, low: float = 0.0, high: float = 1.0) -> torch.Tensor:
    r = torch.rand_like(x)
    x = torch.where(r < fraction / 2, torch.full_like(x, low), x)
    return torch.where((r >= fraction / 2) & (r < fraction), torch.full_like(x, high), x)


class STMAE(VadModel):
    name = "stmae"
    paper_score = "−PSNR of the predicted next frame (eq. 11; the paper min–max normalises it per video) (graph output 'error')"

    def __init__(self, config: dict[str, Any]):
        super().__init__(config)
        c = self.config
        if c["size"] % 8:
            raise EdgeVadError(f"stmae: size must be a multiple of 8, not {c['size']}")
        self.ch = 1 if c["color"] == "gray" else 3
        self.k = int(c["frames"])
        w = list(c["widths"])
        self.app_ae = AutoEncoder(self.k * self.ch, w)
        self.mot_ae = AutoEncoder(self.k * 2, w)
        self.spatial = MemoryPool(c["mem_items"], w[2], c["write_topk"])
        self.temporal = MemoryPool(c["mem_items"], w[2], c["write_topk"])
        self.predictor = nn.Sequential(  # the 5-layer decoder f_d over [z_a, r_a, z_m, r_m]
            conv_bn(4 * w[2], w[2], act="relu"), up_bn(w[2], w[1]), up_bn(w[1], w[0]), up_bn(w[0], w[0]),
            nn.Conv2d(w[0], self.ch, 3, padding=1),
        )
        self.disc = PatchDiscriminator(self.ch, c["d_width"])

    def input_spec(self, fps: float | None = None) -> InputSpec:
        size = self.config["size"]
        return InputSpec(color=self.config["color"], height=size, width=size, fps=fps, motion="flow")

    @property
    def clip_length(self) -> int:
        return self.k + 1

    # --- parts ---------------------------------------------------------------
    def _split(self, clips):
        b, _, _, h, w = clips.shape
        obs = clips[:, : self.k]
        frames = obs[:, :, : self.ch].reshape(b, self.k * self.ch, h, w)
        flows = obs[:, :, self.ch :].reshape(b, self.k * 2, h, w)
        return frames, flows, clips[:, self.k, : self.ch], clips[:, self.k - 1, : self.ch]

    def predict(self, frames, flows):
        za = self.app_ae.encoder(frames)
        zm = self.mot_ae.encoder(flows)
        pred = self.predictor(torch.cat([za, self.spatial.read(za), zm, self.temporal.read(zm)], 1))
        return pred, za, zm

    def _stage(self, epoch: int) -> int:
        return 1 if epoch < max(1, round(self.config["pretrain"] * self.config["epochs"])) else 2

    # --- training --------------------------------------------------------------
    def configure_optimizers(self):
        c = self.config
        gen = list(self.predictor.parameters()) + list(self.spatial.parameters()) + list(self.temporal.parameters())
        return {
            "ae": torch.optim.Adam(list(self.app_ae.parameters()) + list(self.mot_ae.parameters()), lr=c["lr"]),
            "g": torch.optim.Adam(gen, lr=c["lr"]),
            "d": torch.optim.Adam(self.disc.parameters(), lr=c["lr_d"]),
        }

    def loss(self, clips):
        """Generator loss of the main stage (eq. 10); discriminator and pre-training are in training_step."""
        c = self.config
        frames, flows, target, last = self._split(clips)
        pred, za, zm = self.predict(frames, flows)
        l_app = (pred - target).pow(2).mean()
        # Motion loss (eq. 6) without a differentiable flow network: the change into the predicted
        # frame must match the real change from the last observed frame (brightness constancy).
        l_mot = ((pred - last).abs() - (target - last).abs()).abs().mean()
        l_adv = (self.disc(pred) - 1).pow(2).mean()
        l_mem = self.spatial.loss(za, c["mem_margin"]) + self.temporal.loss(zm, c["mem_margin"])
        loss = l_app + c["lambda_motion"] * l_mot + c["lambda_adv"] * l_adv + c["lambda_mem"] * l_mem
        logs = {"app": float(l_app.detach()), "motion": float(l_mot.detach()), "adv": float(l_adv.detach()),
                "mem": float(l_mem.detach())}
        return loss, logs, pred.detach(), target, za.detach(), zm.detach()

    def _set_lr(self, optimizers, epoch: int) -> None:
        """Cosine annealing over the main stage, as the paper (computed from the epoch, so resuming keeps it)."""
        c = self.config
        start = max(1, round(c["pretrain"] * c["epochs"]))
        frac = (epoch - start) / max(1, c["epochs"] - start)
        for name in ("g", "d"):
            base = c["lr"] if name == "g" else c["lr_d"]
            for group in optimizers[name].param_groups:
                group["lr"] = 0.5 * base * (1 + math.cos(math.pi * frac))

    def training_step(self, clips, optimizers, epoch):
        c = self.config
        if self._stage(epoch) == 1:
            frames, flows, _, _ = self._split(clips)
            rec_a = self.app_ae(salt_and_pepper(frames, c["noise"]))
            rec_m = self.mot_ae(flows)
            l_a = (rec_a - frames).pow(2).mean()
            l_m = (rec_m - flows).pow(2).mean()
            loss = l_a + l_m
            self.optimize(loss, optimizers["ae"])
            return {"loss": float(loss.detach()), "denoise": float(l_a.detach()), "flow_rec": float(l_m.detach())}

        self._set_lr(optimizers, epoch)
        self.app_ae.eval()  # frozen after pre-training, batch-norm statistics included
        self.mot_ae.eval()
        for p in list(self.app_ae.parameters()) + list(self.mot_ae.parameters()):
            p.requires_grad_(False)
        loss, logs, pred, target, za, zm = self.loss(clips)
        self.optimize(loss, optimizers["g"])
        self.spatial.write(za)
        self.temporal.write(zm)
        # Least-squares PatchGAN: real patches → 1, predicted → 0.
        l_d = 0.5 * ((self.disc(target) - 1).pow(2).mean() + self.disc(pred).pow(2).mean())
        self.optimize(l_d, optimizers["d"])
        return {"loss": float(loss.detach()), "d": float(l_d.detach()), **logs}

    # --- scoring -----------------------------------------------------------------
    def score_windows(self, clips):
        """error = −PSNR of the predicted frame (larger = more anomalous); map = absolute error.

        The map is |Î − I|, not the squared error behind PSNR: squared errors of a
        blurry prediction are dominated by a few pixels on walkers' edges, which made
        the per-cell statistics of the streaming score spiky on held-out normal footage
        (streaming AUC 0.79 → 0.85 on the validation set cut from training frames 0–479).
        """
        frames, flows, target, _ = self._split(clips)
        pred, _, _ = self.predict(frames, flows)
        diff = pred - target
        mse = diff.pow(2).flatten(1).mean(1).clamp_min(1e-10)
        psnr = 10 * torch.log10(1.0 / mse)
        return {"error": -psnr, "error_map": diff.abs().mean(1, keepdim=True)}


def build(config: dict[str, Any]) -> STMAE:
    return STMAE(config)
