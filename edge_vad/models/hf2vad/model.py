"""HF2-VAD (torch side): ML-MemAE-SC + CVAE on spatio-temporal object cubes.

The graph takes the ``objects:K`` frame tensor of ``edge_vad.data.motion``
(appearance, flow, K box masks) and crops the cubes itself, with the current
frame's boxes over the last t + 1 frames it carries as state, so cropping is
part of what is exported and checked for parity.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from edge_vad.data.spec import InputSpec, parse_motion
from edge_vad.errors import EdgeVadError
from edge_vad.models.base import StateSpec, VadModel

EPS = 1e-12


# ---------------------------------------------------------------- cropping
def _grid_crop(src: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
    """src 1×C×H×W, boxes N×4 (x0, y0, x1, y1 pixel edges) → N×C×S×S, bilinear, edge pixels repeated."""
    _, _, h, w = src.shape
    k = boxes.shape[0]
    x0, y0, x1, y1 = boxes.unbind(-1)
    g = (torch.arange(size, dtype=src.dtype, device=src.device) + 0.5) / size
    # align_corners=False coordinates: pixel i spans [2i/W − 1, 2(i+1)/W − 1].
    gx = (2 * x0 / w - 1).unsqueeze(-1) + (2 * (x1 - x0) / w).unsqueeze(-1) * g  # N×S
    gy = (2 * y0 / h - 1).unsqueeze(-1) + (2 * (y1 - y0) / h).unsqueeze(-1) * g
    grid = torch.stack([gx.unsqueeze(-2).expand(k, size, size), gy.unsqueeze(-1).expand(k, size, size)], -1)
    # Objects are laid out along the output's rows: one sampling call, no per-object copies of the frame.
    out = F.grid_sample(src, grid.reshape(1, k * size, size, 2), mode="bilinear", padding_mode="border",
                        align_corners=False)
    return out.reshape(-1, k, size, size).transpose(0, 1)


def _crop_resize_torch(src: torch.Tensor, rois: torch.Tensor, batch_index: torch.Tensor, size: int) -> torch.Tensor:
    """src B×C×H×W, rois N×4 of the images batch_index N → N×C×S×S."""
    out = src.new_empty(rois.shape[0], src.shape[1], size, size)
    for i in range(src.shape[0]):
        sel = (batch_index == i).nonzero()[:, 0]
        if len(sel):
            out[sel] = _grid_crop(src[i : i + 1], rois[sel], size)
    return out


class _RoiAlignCrop(torch.autograd.Function):
    """Exported as one ONNX ``RoiAlign``: with one sample per bin at the bin centre (``half_pixel``) it
    reads exactly the points ``grid_sample`` reads, and every point lies within half a pixel of the
    frame, where its clamping equals border padding. ONNX Runtime's RoiAlign shares the bilinear
    weights across channels; its GridSample recomputes them per channel, 3× slower here."""

    @staticmethod
    def forward(ctx, src, rois, batch_index, size):  # noqa: ARG004
        return _crop_resize_torch(src, rois, batch_index, size)

    @staticmethod
    def symbolic(g, src, rois, batch_index, size):
        return g.op("RoiAlign", src, rois, batch_index, mode_s="avg", output_height_i=size, output_width_i=size,
                    sampling_ratio_i=1, spatial_scale_f=1.0, coordinate_transformation_mode_s="half_pixel")


def crop_resize(src: torch.Tensor, rois: torch.Tensor, batch_index: torch.Tensor, size: int) -> torch.Tensor:
    """Cut roi i (x0, y0, x1, y1 pixel edges) from image batch_index[i] of src, resized to size×size."""
    if not torch.onnx.is_in_onnx_export():
        return _crop_resize_torch(src, rois, batch_index, size)
    return _RoiAlignCrop.apply(src, rois, batch_index, size)


# ---------------------------------------------------------------- ML-MemAE-SC
def double_conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
    )


class Down(nn.Sequential):
    def __init__(self, cin: int, cout: int):
        super().__init__(nn.Conv2d(cin, cin, 3, stride=2, padding=1), double_conv(cin, cout))


class Up(nn.Module):
    def __init__(self, cin: int, cout: int, skip: bool):
        super().__init__()
        self.up = nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1)
        self.conv = double_conv(2 * cout if skip else cout, cout)

    def forward(self, x, skip=None):
        x = self.up(x)
        return self.conv(torch.cat([x, skip], 1) if skip is not None else x)


class Memory(nn.Module):
    """MemAE memory over whole flattened feature maps (as HF2-VAD, not per position).

    Read: w = softmax(q·Mᵀ), hard shrinkage ŵ = relu(w−λ)·w/(|w−λ|+ε), L1
    renormalisation, out = ŵ·M. The slots are weights, so they are in the graph.
    """

    def __init__(self, slots: int, dim: int, shrink: float):
        super().__init__()
        self.shrink = float(shrink)
        bound = 1.0 / math.sqrt(dim)
        self.weight = nn.Parameter(torch.empty(slots, dim).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        att = F.softmax(x.flatten(1) @ self.weight.t(), dim=1)
        if self.shrink > 0:
            att = hard_shrink(att, self.shrink)
        return (att @ self.weight).view_as(x), att


def hard_shrink(att: torch.Tensor, lam: float) -> torch.Tensor:
    """MemAE's continuous hard shrinkage, then L1 renormalisation."""
    att = F.relu(att - lam) * att / ((att - lam).abs() + EPS)
    return att / att.sum(1, keepdim=True).clamp_min(EPS)


def entropy(att: torch.Tensor) -> torch.Tensor:
    return (-att * torch.log(att + EPS)).sum(1).mean()


class MLMemAESC(nn.Module):
    """Multi-level memory AE with skips (all but the outermost), on one 2×32×32 flow."""

    def __init__(self, root: int, slots: int, shrink: float, cube: int):
        super().__init__()
        r = root
        self.inc = double_conv(2, r)
        self.down1, self.down2, self.down3 = Down(r, 2 * r), Down(2 * r, 4 * r), Down(4 * r, 8 * r)
        s = cube // 8
        self.mem3 = Memory(slots, 8 * r * s * s, shrink)
        self.up3 = Up(8 * r, 4 * r, skip=True)
        self.mem2 = Memory(slots, 4 * r * (2 * s) ** 2, shrink)
        self.up2 = Up(4 * r, 2 * r, skip=True)
        self.mem1 = Memory(slots, 2 * r * (4 * s) ** 2, shrink)
        self.up1 = Up(2 * r, r, skip=False)
        self.out = nn.Conv2d(r, 2, 1)

    def forward(self, x):
        x0 = self.inc(x)
        x1 = self.down1(x0)
        x2 = self.down2(x1)
        x3 = self.down3(x2)
        m3, a3 = self.mem3(x3)
        u3 = self.up3(m3, x2)
        m2, a2 = self.mem2(u3)
        u2 = self.up2(m2, x1)
        m1, a1 = self.mem1(u2)
        return self.out(self.up1(m1)), (a1, a2, a3)


# ---------------------------------------------------------------- CVAE (VUNet style)
class ResBlock(nn.Module):
    """VUNet residual block: x + Conv3×3(Dropout(ELU(x) ⊕ 1×1(ELU(skip))))."""

    def __init__(self, ch: int, skip_ch: int, dropout: float):
        super().__init__()
        self.pre = nn.Conv2d(skip_ch, ch, 1) if skip_ch else None
        self.conv = nn.Conv2d(2 * ch if skip_ch else ch, ch, 3, padding=1)
        self.drop = nn.Dropout(dropout)

    def forward(self, x, skip=None):
        h = F.elu(x)
        if self.pre is not None:
            h = torch.cat([h, self.pre(F.elu(skip))], 1)
        return x + self.conv(self.drop(h))


class Upsample(nn.Module):
    """Subpixel upsampling (conv to 4·C, depth-to-space), as VUNet."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, 4 * cout, 3, padding=1)

    def forward(self, x):
        return F.pixel_shuffle(self.conv(x), 2)


class Encoder(nn.Module):
    """Stages at 32, 16, 8, 4 px; returns every residual block's output per stage."""

    def __init__(self, cin: int, widths: list[int], n_rnb: int, dropout: float):
        super().__init__()
        self.inp = nn.Conv2d(cin, widths[0], 1)
        self.blocks = nn.ModuleList(nn.ModuleList(ResBlock(w, 0, dropout) for _ in range(n_rnb)) for w in widths)
        self.downs = nn.ModuleList(nn.Conv2d(a, b, 3, stride=2, padding=1) for a, b in zip(widths, widths[1:]))

    def forward(self, x):
        h, out = self.inp(x), []
        for i, blocks in enumerate(self.blocks):
            stage = []
            for b in blocks:
                h = b(h)
                stage.append(h)
            out.append(stage)
            if i < len(self.downs):
                h = self.downs[i](h)
        return out


class CVAE(nn.Module):
    """Frame predictor conditioned on the reconstructed flows.

    f_phi (posterior) sees the t past frames and the t reconstructed flows,
    e_theta (prior) the flows only; unit-variance Gaussian latents at 4×4 and
    8×8 parameterised by their means; the decoder takes f_phi's skips. At test
    time the posterior mean is used (deterministic, so the graph is too).
    """

    def __init__(self, app_ch: int, past: int, nf_start: int, nf_max: int, n_rnb: int, dropout: float):
        super().__init__()
        w = [min(nf_start * 2 ** i, nf_max) for i in range(4)]  # 32, 16, 8, 4 px
        self.widths = w
        self.f_phi = Encoder(past * (app_ch + 2), w, n_rnb, dropout)
        self.e_theta = Encoder(past * 2, w, n_rnb, dropout)
        self.q4 = ResBlock(w[3], w[3], dropout)
        self.p4 = ResBlock(w[3], w[3], dropout)
        self.up4 = Upsample(w[3], w[2])
        self.q8_in = nn.Conv2d(2 * w[2], w[2], 1)
        self.p8_in = nn.Conv2d(2 * w[2], w[2], 1)
        self.q8 = ResBlock(w[2], w[2], dropout)
        self.p8 = ResBlock(w[2], w[2], dropout)
        self.h8 = nn.Conv2d(2 * w[2], w[2], 1)
        self.dec8 = ResBlock(w[2], w[2], dropout)
        self.up8 = Upsample(w[2], w[1])
        self.dec16 = nn.ModuleList(ResBlock(w[1], w[1], dropout) for _ in range(n_rnb))
        self.up16 = Upsample(w[1], w[0])
        self.dec32 = nn.ModuleList(ResBlock(w[0], w[0], dropout) for _ in range(n_rnb))
        self.out = nn.Conv2d(w[0], app_ch, 1)

    def forward(self, past_frames, flows):
        f = self.f_phi(torch.cat([past_frames, flows], 1))
        e = self.e_theta(flows)
        q4 = self.q4(f[3][-1], f[3][-1])
        p4 = self.p4(e[3][-1], e[3][-1])
        z4 = q4 + torch.randn_like(q4) if self.training else q4
        u4 = self.up4(z4)
        q8 = self.q8(self.q8_in(torch.cat([f[2][-1], u4], 1)), f[2][-1])
        p8 = self.p8(self.p8_in(torch.cat([e[2][-1], u4], 1)), e[2][-1])
        z8 = q8 + torch.randn_like(q8) if self.training else q8
        h = self.dec8(self.h8(torch.cat([z8, u4], 1)), f[2][-1])
        h = self.up8(h)
        for blk, skip in zip(self.dec16, reversed(f[1])):
            h = blk(h, skip)
        h = self.up16(h)
        for blk, skip in zip(self.dec32, reversed(f[0])):
            h = blk(h, skip)
        pred = torch.sigmoid(self.out(h))
        kl = sum(0.5 * (p - q).pow(2).flatten(1).sum(1).mean() for p, q in ((p4, q4), (p8, q8)))
        return pred, kl


def gradient_loss(pred, target):
    def d(x):
        return x[..., :, 1:] - x[..., :, :-1], x[..., 1:, :] - x[..., :-1, :]

    (px, py), (tx, ty) = d(pred), d(target)
    return ((px.abs() - tx.abs()).abs().mean() + (py.abs() - ty.abs()).abs().mean())


# ---------------------------------------------------------------- HF2-VAD
class HF2VAD(VadModel):
    name = "hf2vad"
    paper_score = ("max over foreground objects of w_r·z(flow SSE) + w_p·z(frame SSE), z-scored with training "
                   "statistics (w_r = 1, w_p = 0.1); no object: the score of zero error (graph output 'error')")

    def __init__(self, config: dict[str, Any]):
        super().__init__(config)
        c = self.config
        self.app_ch = 1 if c["color"] == "gray" else 3
        self.past = int(c["past"])
        self.cube = int(c["cube"])
        if self.cube % 8:
            raise EdgeVadError(f"hf2vad: cube must be a multiple of 8, not {self.cube}")
        self.slots = int(c["max_objects"])
        shrink = c["shrink_thres"] if c["shrink_thres"] is not None else 1.0 / c["mem_slots"]
        self.memae = MLMemAESC(c["features_root"], c["mem_slots"], shrink, self.cube)
        self.cvae = CVAE(self.app_ch, self.past, c["nf_start"], c["nf_max"], c["n_rnb"], c["dropout"])
        # z-score statistics of the flow and frame errors over the training cubes (fit after training).
        self.register_buffer("stats", torch.tensor([0.0, 1.0, 0.0, 1.0]))

    # --- description -----------------------------------------------------
    def input_spec(self, fps: float | None = None) -> InputSpec:
        c = self.config
        return InputSpec(color=c["color"], height=c["height"], width=c["width"], fps=fps,
                         motion=f"objects:{self.slots}")

    @property
    def clip_length(self) -> int:
        return self.past + 1

    def state_specs(self) -> list[StateSpec]:
        c = self.config
        # Appearance and flow of the last t frames; their box masks are never read again.
        return [StateSpec("frames", (self.past * (self.app_ch + 2), c["height"], c["width"]))]

    def step_module(self) -> nn.Module:
        return CubeStep(self)

    # --- cubes -------------------------------------------------------------
    def objects(self, clips: torch.Tensor):
        """clips B×L×(C+2+K)×H×W → cubes N×L×(C+2)×S×S, valid N, index N, masks B×k×H×W (see ``crop``)."""
        ca = self.app_ch + 2
        return self.crop(clips[:, :, :ca], clips[:, -1, ca:])

    def crop(self, frames: torch.Tensor, masks: torch.Tensor):
        """frames B×L×(C+2)×H×W, box masks of the last frame B×K×H×W → cubes N×L×(C+2)×S×S,
        valid N, index N (into B×k, row-major), masks B×k×H×W.

        Every box of the last frame is cropped from all L frames (the paper's
        STC: the same box over t−4..t), bilinearly resized to S×S. Only the
        (clip, slot) pairs that hold an object are cut: the paper scores the
        objects a frame has, and an empty slot would cost a full cube's networks
        to be masked away. Pairs are picked one by one, not as slots shared by
        the batch, so cameras batched into one call cost the sum of their
        objects rather than the batch size × the busiest camera's. Pair (0, 0)
        is always cut (``valid`` False when empty), so no tensor is empty.
        The masks keep the k slots some clip uses, for painting the error map.
        """
        b, length, ca, h, w = frames.shape
        s = self.cube
        k_all = masks.shape[1]
        used = (masks.flatten(2).amax(-1) > 0.5).any(0) | (torch.arange(k_all, device=masks.device) == 0)
        masks = masks.index_select(1, used.nonzero()[:, 0])
        k = masks.shape[1]
        rows, cols = masks.amax(-1), masks.amax(-2)
        ys = torch.arange(h, dtype=frames.dtype, device=frames.device)
        xs = torch.arange(w, dtype=frames.dtype, device=frames.device)
        y1, y0 = (rows * ys).amax(-1), (h - 1) - (rows * (h - 1 - ys)).amax(-1)
        x1, x0 = (cols * xs).amax(-1), (w - 1) - (cols * (w - 1 - xs)).amax(-1)
        valid = (rows.amax(-1) > 0.5).reshape(-1)
        index = (valid | (torch.arange(valid.shape[0], device=valid.device) == 0)).nonzero()[:, 0]
        # Pixel edges of each box: columns x0..x1 span [x0, x1 + 1).
        boxes = torch.stack([x0, y0, x1 + 1, y1 + 1], -1).reshape(-1, 4).index_select(0, index)
        src = frames.reshape(b, length * ca, h, w)
        cubes = crop_resize(src, boxes, torch.div(index, k, rounding_mode="floor"), s)
        return cubes.reshape(-1, length, ca, s, s), valid.index_select(0, index), index, masks

    def _split(self, cubes: torch.Tensor):
        """cubes N×L×(C+2)×S×S → past frames N×tC×S×S, target N×C×S×S, flows N×t×2×S×S."""
        n, c = cubes.shape[0], self.app_ch
        past = cubes[:, : self.past, :c].reshape(n, self.past * c, self.cube, self.cube)
        return past, cubes[:, self.past, :c], cubes[:, 1:, c:]

    def _reconstruct_flows(self, flows: torch.Tensor):
        n = flows.shape[0]
        recon, atts = self.memae(flows.reshape(n * self.past, 2, self.cube, self.cube))
        return recon.reshape(n, self.past, 2, self.cube, self.cube), atts

    def errors(self, cubes: torch.Tensor):
        """Per cube: flow SSE over the t flows and frame SSE of the prediction."""
        past, target, flows = self._split(cubes)
        recon, _ = self._reconstruct_flows(flows)
        n = cubes.shape[0]
        pred, _ = self.cvae(past, recon.reshape(n, self.past * 2, self.cube, self.cube))
        s_of = (recon - flows).pow(2).flatten(1).sum(1)
        s_fr = (pred - target).pow(2).flatten(1).sum(1)
        return s_of, s_fr

    # --- training ----------------------------------------------------------
    def stage(self, epoch: int) -> int:
        e = self.config["epochs"]
        a, b = self.config["stages"]
        s1 = max(1, round(a * e))
        s2 = s1 + max(1, round(b * e))
        return 1 if epoch < s1 else 2 if epoch < s2 else 3

    def configure_optimizers(self):
        c = self.config
        return {
            "memae": torch.optim.Adam(self.memae.parameters(), lr=c["lr"], eps=1e-7),
            "cvae": torch.optim.Adam(self.cvae.parameters(), lr=c["lr"], eps=1e-7),
            "finetune": torch.optim.Adam(self.parameters(), lr=c["lr_finetune"], eps=1e-7),
        }

    def loss(self, clips, stage: int = 3):
        c = self.config
        cubes, valid, _, _ = self.objects(clips)
        cubes = cubes[valid]
        if len(cubes) == 0:
            return None, {}
        past, target, flows = self._split(cubes)
        logs = {"objects": float(len(cubes)) / len(clips)}
        if stage == 2:
            self.memae.eval()  # frozen: its batch-norm statistics too
            with torch.no_grad():
                recon, atts = self._reconstruct_flows(flows)
        else:
            recon, atts = self._reconstruct_flows(flows)
        flow_mse = (recon - flows).pow(2).mean()
        ent = sum(entropy(a) for a in atts)
        logs.update(flow_mse=float(flow_mse.detach()), entropy=float(ent.detach()))
        if stage == 1:
            return flow_mse + c["entropy_weight"] * ent, logs
        n = len(cubes)
        pred, kl = self.cvae(past, recon.reshape(n, self.past * 2, self.cube, self.cube))
        frame_mse = (pred - target).pow(2).mean()
        loss = c["lambda_kl"] * kl + c["lambda_frame"] * frame_mse + c["lambda_grad"] * gradient_loss(pred, target)
        logs.update(kl=float(kl.detach()), frame_mse=float(frame_mse.detach()))
        if stage == 3:
            loss = loss + c["lambda_recon"] * flow_mse + c["entropy_weight"] * ent
        return loss, logs

    def training_step(self, clips, optimizers, epoch):
        stage = self.stage(epoch)
        loss, logs = self.loss(clips, stage)
        if loss is None:
            return {}
        self.optimize(loss, optimizers[{1: "memae", 2: "cvae", 3: "finetune"}[stage]])
        return {"loss": float(loss.detach()), "stage": float(stage), **logs}

    @torch.no_grad()
    def fit_training_statistics(self, dataset) -> None:
        """Mean/std of the flow and frame errors over all training cubes (the paper's z-scores)."""
        was = self.training
        self.eval()
        s_of, s_fr = [], []
        for i in range(0, len(dataset), 16):
            clips = torch.stack([dataset[j] for j in range(i, min(i + 16, len(dataset)))])
            cubes, valid, _, _ = self.objects(clips)
            if valid.any():
                a, b = self.errors(cubes[valid])
                s_of.append(a)
                s_fr.append(b)
        if s_of:
            a, b = torch.cat(s_of), torch.cat(s_fr)
            self.stats.copy_(torch.stack([a.mean(), a.std().clamp_min(1e-6), b.mean(), b.std().clamp_min(1e-6)]))
        self.train(was)

    # --- scoring -----------------------------------------------------------
    def score_windows(self, clips):
        ca = self.app_ch + 2
        return self.score_cubes(clips[:, :, :ca], clips[:, -1, ca:])

    def score_cubes(self, frames, masks):
        """Frame error = max over objects of w_r·z(s_of) + w_p·z(s_fr); the error map
        paints each object's score above the no-object score into its box.

        frames B×L×(C+2)×H×W (appearance and flow), masks B×K×H×W (the last frame's boxes)."""
        c = self.config
        cubes, valid, index, masks = self.crop(frames, masks)
        b, k = masks.shape[:2]
        s_of, s_fr = self.errors(cubes)
        m_of, sd_of, m_fr, sd_fr = self.stats
        z = c["w_flow"] * (s_of - m_of) / sd_of + c["w_frame"] * (s_fr - m_fr) / sd_fr
        base = c["w_flow"] * (-m_of / sd_of) + c["w_frame"] * (-m_fr / sd_fr)
        z = (torch.zeros(b * k, dtype=z.dtype, device=z.device) + base).scatter(0, index, torch.where(valid, z, base))
        z = z.reshape(b, k)
        error = z.amax(1)
        error_map = (masks * (z - base).clamp_min(0).reshape(b, k, 1, 1)).amax(1, keepdim=True)
        return {"error": error, "error_map": error_map}


class CubeStep(nn.Module):
    """Streaming step: the state is the appearance and flow of the last t frames.

    Scores exactly the sliding window ``score_windows`` scores; the masks of
    past frames are left out of the state because cubes are cut with the
    current frame's boxes only (10 of 13 channels per frame at K = 10).
    """

    input_names = ("frame", "frames")
    output_names = ("error", "error_map", "frames_out")

    def __init__(self, model: HF2VAD):
        super().__init__()
        self.model = model
        self.ca = model.app_ch + 2

    def forward(self, frame: torch.Tensor, frames: torch.Tensor):
        b, _, h, w = frame.shape
        window = torch.cat([frames.reshape(b, -1, self.ca, h, w), frame[:, : self.ca].unsqueeze(1)], dim=1)
        out = self.model.score_cubes(window, frame[:, self.ca:])
        return out["error"], out["error_map"], window[:, 1:].reshape(b, -1, h, w)


def build(config: dict[str, Any]) -> HF2VAD:
    parse_motion(f"objects:{config['max_objects']}")
    return HF2VAD(config)
