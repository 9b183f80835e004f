"""``edge-vad train``: fit a registered model on normal footage.

The tail of the frame range is held out (never trained on) and used afterwards
to calibrate the streaming score, so thresholds come from normal frames the
model has not memorised.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from edge_vad import __version__
from edge_vad.data.frames import read_frames, video_info
from edge_vad.data.frames import parse_range
from edge_vad.data.preprocess import preprocess_many
from edge_vad.errors import EdgeVadError
from edge_vad.models import get_model
from edge_vad.scoring.streaming import calibration_warning, fit_calibration
from edge_vad.training import checkpoint as ckpt_io
from edge_vad.training.clips import ClipDataset
from edge_vad.training.inference import score_frames


def load_training_frames(data: Path, frames: str | None, spec) -> tuple[np.ndarray, dict]:
    info = video_info(data)
    start, stop = parse_range(frames, info.frames)
    raw = list(tqdm(read_frames(data, start, stop), total=stop - start, desc="reading frames", unit="f", leave=False))
    return preprocess_many(raw, spec), {"path": str(data), "start": start, "stop": start + len(raw), "fps": info.fps}


def holdout_blocks(n: int, fraction: float, blocks: int = 3) -> list[tuple[int, int]]:
    """Held-out blocks spread over the range, the last at its end.

    A scene changes over minutes (a busy spell, a quiet one); blocks spread over
    the footage calibrate the score on all of it, where one tail block would
    calibrate on whatever happened last.
    """
    size = int(round(n * fraction / blocks))
    return [(round((i + 1) * n / blocks) - size, round((i + 1) * n / blocks)) for i in range(blocks)] if size else []


def split_segments(n: int, held: list[tuple[int, int]]) -> list[tuple[int, int]]:
    segments, start = [], 0
    for a, b in held:
        if a > start:
            segments.append((start, a))
        start = b
    if start < n:
        segments.append((start, n))
    return segments


def _training_options(config: dict[str, Any]) -> dict[str, Any]:
    """The options a resumed run must share with its checkpoint: everything that
    shapes the weights. The epoch count may grow, and score_* options only shape
    the calibration that is refitted when training ends."""
    return {k: v for k, v in config.items() if k != "epochs" and not _is_score_option(k)}


def _is_score_option(key: str) -> bool:
    return key.startswith("score_")


def _reject_unknown(model_name: str, overrides: dict[str, Any], known) -> None:
    unknown = sorted(set(overrides) - set(known))
    if unknown:
        raise EdgeVadError(f"unknown option(s) for {model_name}: {', '.join(unknown)}")


def _config_for(model_name: str, preset: str, overrides: dict[str, Any]) -> dict[str, Any]:
    config = get_model(model_name).preset(preset)
    _reject_unknown(model_name, overrides, config)
    config.update(overrides)
    return config


def train(
    model_name: str,
    preset: str,
    data: Path,
    out: Path,
    frames: str | None = None,
    holdout: float = 0.25,
    epochs: int | None = None,
    overrides: dict[str, Any] | None = None,
    seed: int = 0,
    threads: int | None = None,
    target_far: float = 0.01,
    log=print,
) -> dict:
    if threads:
        torch.set_num_threads(threads)
    entry = get_model(model_name)
    config = _config_for(model_name, preset, overrides or {})
    if epochs is not None:
        config["epochs"] = epochs
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    resume = (out / ckpt_io.CONFIG).exists()
    if resume:
        info = ckpt_io.read_info(out)
        before, now = _training_options(info["config"]), _training_options(config)
        if info.get("model") != model_name or before != now:
            changed = sorted(k for k in before.keys() | now.keys() if before.get(k) != now.get(k))
            raise EdgeVadError(
                f"{out}: holds a checkpoint of {info.get('model')} trained with different options "
                f"({', '.join(changed) or 'model'}); choose another --out"
            )

    torch.manual_seed(seed)
    model = entry.torch_side().build(config)
    spec = model.input_spec()
    pixels, source = load_training_frames(data, frames, spec)
    spec = model.input_spec(fps=source["fps"])
    held = holdout_blocks(len(pixels), holdout)
    segments = split_segments(len(pixels), held)
    if not held or min(b - a for a, b in held) < model.clip_length + 5 or sum(b - a for a, b in segments) < model.train_clip_length * 3:
        raise EdgeVadError(
            f"{data}: {len(pixels)} frames are too few to train {model_name} and hold out {holdout:.0%} "
            f"(3 blocks of at least {model.clip_length + 5} frames) for calibration"
        )
    hold_px = [pixels[a:b] for a, b in held]
    train_px = [pixels[a:b] for a, b in segments]
    source["train"] = [[source["start"] + a, source["start"] + b] for a, b in segments]
    source["holdout"] = [[source["start"] + a, source["start"] + b] for a, b in held]

    start_epoch, history = 0, []
    if resume:
        model, info = ckpt_io.load_model(out)
        # The checkpoint's config may differ in epochs and score options only; staged
        # models schedule by the epoch count, and scoring is refitted after training.
        model.config.update(config)
        start_epoch, history = info["epoch"], info.get("history", [])
    optimizers = model.configure_optimizers()
    if resume:
        ckpt_io.load_optimizer_state(out, optimizers, info)
        log(f"resuming {out} at epoch {start_epoch}/{config['epochs']}")

    dataset = ClipDataset(train_px, model.train_clip_length, config.get("strides", (1,)), model.train_clip_every)
    base_info = {
        "format": 1,
        "model": model_name,
        "preset": preset,
        "config": config,
        "input": spec.to_dict(),
        "data": source,
        "seed": seed,
        "versions": {"edge_vad": __version__, "torch": torch.__version__},
    }
    for epoch in range(start_epoch, config["epochs"]):
        gen = torch.Generator().manual_seed(seed * 1000 + epoch)
        loader = torch.utils.data.DataLoader(dataset, batch_size=config["batch_size"], shuffle=True, generator=gen, drop_last=True)
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{config['epochs']}", unit="batch", leave=False)
        model.train()
        sums, seen, t0 = {}, 0, time.time()
        for clips in bar:
            try:
                logs = model.training_step(clips, optimizers, epoch)
            except FloatingPointError as exc:
                raise EdgeVadError(f"{model_name}: training diverged at epoch {epoch + 1}: {exc}") from None
            seen += len(clips)
            for k, v in logs.items():
                sums[k] = sums.get(k, 0.0) + v * len(clips)
            bar.set_postfix({k: f"{v / seen:.5g}" for k, v in sums.items()})
        means = {k: v / max(seen, 1) for k, v in sums.items()}
        history.append({"epoch": epoch + 1, **means, "seconds": round(time.time() - t0, 1)})
        log(f"epoch {epoch + 1}/{config['epochs']}  " + "  ".join(f"{k} {v:.5g}" for k, v in means.items())
            + f"  ({history[-1]['seconds']} s)")
        ckpt_io.save_checkpoint(out, model, {**base_info, "epoch": epoch + 1, "history": history, "state": "training"}, optimizers)

    model.eval()
    # Models whose paper score is normalised with training statistics (hf2vad's z-scores) fit them here.
    fit_stats = getattr(model, "fit_training_statistics", None)
    if fit_stats is not None:
        fit_stats(dataset)
    calib = calibrate(model, hold_px, config, target_far, source)
    ckpt_io.atomic_write_text(out / ckpt_io.CALIBRATION, json.dumps(calib.to_dict(), indent=2))
    info = {**base_info, "epoch": config["epochs"], "history": history, "state": "done"}
    ckpt_io.save_checkpoint(out, model, info, optimizers)
    log(f"saved {out} (threshold {calib.threshold:.2f} σ for {target_far:.1%} false alarms on {calib.frames} held-out frames)")
    warning = calibration_warning(calib)
    if warning:
        log(f"warning: {warning}")
    return info


def _score_option(model, config: dict, key: str, default):
    # Checkpoints older than a score option fall back to their preset's current value.
    if key in config:
        return config[key]
    entry = get_model(model.name)
    preset = next((p for p in entry.presets.values() if p.get("size") == config.get("size")), {})
    return preset.get(key, default)


def calibrate(model, hold_px: list[np.ndarray], config: dict, target_far: float, source: dict):
    maps = [score_frames(model, block)[1] for block in hold_px]
    return fit_calibration(
        maps,
        grid=config["score_grid"],
        topk=config["score_topk"],
        ema=config["score_ema"],
        target_far=target_far,
        source={"path": source["path"], "frames": source["holdout"]},
        agg=_score_option(model, config, "score_agg", "topk"),
    )


def calibrate_checkpoint(ckpt: Path, data: Path | None = None, frames: str | None = None,
                         target_far: float = 0.01, overrides: dict[str, Any] | None = None, log=print):
    """(Re)fit the streaming score on normal footage: the held-out range by default,
    or footage from the camera the model will watch. ``overrides`` may change
    score_* options (they shape the score, not the weights) and are saved."""
    model, info = ckpt_io.load_model(Path(ckpt))
    if overrides:
        retrain = sorted(k for k in overrides if not _is_score_option(k))
        if retrain:
            raise EdgeVadError(f"{ckpt}: only score_* options change without retraining; "
                               f"{', '.join(retrain)} needs 'edge-vad train'")
        # Any preset's keys: a checkpoint older than a score option may still take it.
        entry = get_model(info["model"])
        _reject_unknown(info["model"], overrides, set().union(*entry.presets.values()))
        info["config"].update(overrides)
        # Built before anything is written: a value the model refuses must leave the checkpoint as it was.
        state = model.state_dict()
        model = entry.torch_side().build(info["config"])
        model.load_state_dict(state)
        model.eval()
        ckpt_io.atomic_write_text(Path(ckpt) / ckpt_io.CONFIG, json.dumps(info, indent=2))
    if data is None:
        src = info["data"]
        blocks, source = [], {"path": src["path"], "holdout": src["holdout"]}
        for a, b in src["holdout"]:
            blocks.append(load_training_frames(Path(src["path"]), f"{a}:{b}", model.input_spec())[0])
        data = Path(src["path"])
    else:
        pixels, source = load_training_frames(Path(data), frames, model.input_spec())
        blocks = [pixels]
        source["holdout"] = [[source["start"], source["stop"]]]
    calib = calibrate(model, blocks, info["config"], target_far, source)
    ckpt_io.atomic_write_text(Path(ckpt) / ckpt_io.CALIBRATION, json.dumps(calib.to_dict(), indent=2))
    log(f"calibrated {ckpt} on {calib.frames} frames of {data}: threshold {calib.threshold:.2f} σ "
        f"for {target_far:.1%} false alarms")
    warning = calibration_warning(calib)
    if warning:
        log(f"warning: {warning}")
    return calib
