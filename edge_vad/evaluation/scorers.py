"""Per-frame scores of a video from a checkpoint, a bundle, or the framediff baseline.

Each scorer returns the paper's raw error (for the offline protocol) and the
causal streaming score a camera would compute, one value per frame, NaN
where the method has not seen enough frames yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from edge_vad.data.frames import read_frames, video_info
from edge_vad.data.appearance import preprocess
from edge_vad.data.preprocess import preprocess_many
from edge_vad.data.spec import InputSpec
from edge_vad.errors import EdgeVadError
from edge_vad.runtime.bundle.manifest import MANIFEST
from edge_vad.scoring.streaming import Calibration, StreamingScorer

FRAMEDIFF = "framediff"
# framediff works on gray frames at a quarter of vtest's size: enough for motion energy.
FRAMEDIFF_SPEC = InputSpec(color="gray", height=144, width=192)
FRAMEDIFF_EMA = 0.5


@dataclass
class Scores:
    name: str
    errors: np.ndarray  # paper's raw error, larger = more anomalous
    stream: np.ndarray  # streaming score in σ of normal footage
    threshold: float | None  # alarm threshold on `stream`, if calibrated
    warmup: int
    peak_map: np.ndarray | None = None  # error map at the highest streaming score


def _nan(n: int) -> np.ndarray:
    return np.full(n, np.nan)


def conditioned(frames, on: bool = True):
    """Frames as the runtime's CameraStream hands them to a model: with camera shake and light changes
    undone (``edge_vad.data.conditioning``), so every scorer sees what a deployed bundle sees."""
    if not on:
        yield from frames
        return
    from edge_vad.data.conditioning import FrameConditioner

    conditioner = FrameConditioner()
    for f in frames:
        yield conditioner(f).image


def framediff_scores(frames, conditioning: bool = True, raw: bool = False):
    """framediff's streaming score on consecutive BGR frames: mean absolute difference of consecutive gray
    frames, smoothed by the same causal EMA as the models'; NaN on the first frame. ``raw``: also the
    unsmoothed differences (the offline protocol's error)."""
    out, diffs, prev, ema = [], [], None, None
    for f in conditioned(frames, conditioning):
        x = preprocess(f, FRAMEDIFF_SPEC)
        if prev is None:
            out.append(np.nan)
            diffs.append(np.nan)
        else:
            e = float(np.abs(x - prev).mean())
            ema = e if ema is None else FRAMEDIFF_EMA * ema + (1 - FRAMEDIFF_EMA) * e
            out.append(ema)
            diffs.append(e)
        prev = x
    stream = np.asarray(out, np.float64)
    return (stream, np.asarray(diffs, np.float64)) if raw else stream


def score_framediff(video: Path, frames: tuple[int, int | None] = (0, None), conditioning: bool = True,
                    threshold: float | None = None) -> Scores:
    info = video_info(video)
    stop = frames[1] if frames[1] is not None else info.frames
    source = tqdm(read_frames(video, *frames), total=stop - frames[0], desc="framediff", unit="f", leave=False)
    stream, errors = framediff_scores(source, conditioning, raw=True)
    return Scores(FRAMEDIFF, errors, stream, threshold, 1)


def score_checkpoint(ckpt: Path, video: Path, frames: tuple[int, int | None] = (0, None),
                     conditioning: bool = True) -> Scores:
    from edge_vad.training import checkpoint as ckpt_io
    from edge_vad.training.inference import score_frames

    model, info = ckpt_io.load_model(ckpt)
    calib = ckpt_io.read_calibration(ckpt)
    if calib is None:
        raise EdgeVadError(f"{ckpt}: no calibration; training did not finish (run 'edge-vad train' again to resume)")
    px = preprocess_many(list(conditioned(read_frames(video, *frames), conditioning)), model.input_spec())
    with tqdm(total=max(len(px) - model.warmup_frames, 0), desc=f"{info['model']}/{info['preset']}", unit="f", leave=False) as bar:
        errs, maps = score_frames(model, px, progress=bar)
    w = model.warmup_frames
    errors, stream = _nan(len(px)), _nan(len(px))
    # One score per window end; a model that warms up longer than its window (a background to learn)
    # has its first scores dropped, as the streaming step would not have given them.
    errs, maps = errs[len(errs) - max(len(px) - w, 0):], maps[len(maps) - max(len(px) - w, 0):]
    errors[w:] = errs
    scorer = StreamingScorer(Calibration.from_dict(calib))
    stream[w:] = [scorer(m) for m in maps]
    peak = maps[int(np.nanargmax(stream[w:]))] if len(maps) else None
    return Scores(f"{info['model']}/{info['preset']}", errors, stream, calib["threshold"], w, peak)


def score_bundle(bundle_dir: Path, video: Path, frames: tuple[int, int | None] = (0, None), threads: int | None = None,
                 conditioning: bool = True) -> Scores:
    from edge_vad.runtime.bundle.loader import load_bundle
    from edge_vad.runtime.stream import CameraStream

    stream_ = CameraStream(load_bundle(bundle_dir), threads=threads, conditioning=conditioning)
    errors, stream, peak, best = [], [], None, -np.inf
    for f in tqdm(read_frames(video, *frames), desc=stream_.bundle.id, unit="f", leave=False):
        r = stream_.step(f)
        errors.append(r.error)
        stream.append(r.score)
        if r.error_map is not None and r.score > best:
            best, peak = r.score, r.error_map
    return Scores(stream_.bundle.id, np.array(errors), np.array(stream), stream_.threshold, stream_.warmup, peak)


def score_any(model: str, video: Path, frames: tuple[int, int | None] = (0, None), threads: int | None = None,
              conditioning: bool = True) -> Scores:
    if model == FRAMEDIFF:
        return score_framediff(video, frames, conditioning)
    path = Path(model)
    if (path / MANIFEST).exists():
        return score_bundle(path, video, frames, threads, conditioning)
    if (path / "config.json").exists():
        return score_checkpoint(path, video, frames, conditioning)
    raise EdgeVadError(f"{model}: not a checkpoint directory, a bundle, or 'framediff'")
