"""Calibration inputs: real normal frames, streamed through the FP32 graph.

A step graph's inputs are the frame *and* the state, so a calibration sample is
what the graph sees at step t of a real stream: the state comes from running
the FP32 graph over the frames before it, never from zeros or noise.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from edge_vad.data.frames import read_frames, video_info
from edge_vad.data.preprocess import preprocess_many
from edge_vad.data.spec import InputSpec
from edge_vad.errors import EdgeVadError

MIN_CALIB_FRAMES = 64  # fewer leaves activation ranges to chance
MAX_CALIB_SAMPLES = 96  # enough for min/max ranges of a small model; bounds memory and time


def load_calib_frames(source: Path, spec: InputSpec, start: int = 0, stop: int | None = None,
                      min_frames: int = MIN_CALIB_FRAMES) -> np.ndarray:
    """Preprocessed frames of normal footage from a video file or image folder; warns when too few."""
    source = Path(source)
    n = video_info(source).frames
    stop = n if stop is None else min(stop, n)
    frames = preprocess_many(list(read_frames(source, start, stop)), spec)
    if len(frames) == 0:
        raise EdgeVadError(f"{source}: no frames to calibrate on")
    if len(frames) < min_frames:
        warnings.warn(
            f"{source}: only {len(frames)} calibration frames (at least {min_frames} recommended); "
            "INT8 ranges may not cover normal footage",
            stacklevel=2,
        )
    return frames


def stream_samples(graph_path: Path, frames: np.ndarray, state: list[dict], warmup: int,
                   max_samples: int = MAX_CALIB_SAMPLES) -> list[dict[str, np.ndarray]]:
    """Graph inputs at each step of streaming ``frames`` through the FP32 graph (after warm-up)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(graph_path), options, providers=["CPUExecutionProvider"])
    carried = {s["input"]: np.zeros((1, *s["shape"]), np.float32) for s in state}
    outputs = [s["output"] for s in state]
    samples = []
    for i, f in enumerate(frames):
        feed = {"frame": f[None].astype(np.float32), **carried}
        if i >= warmup:
            samples.append({k: v.copy() for k, v in feed.items()})
        new = session.run(outputs, feed)
        carried = {s["input"]: v for s, v in zip(state, new)}
    if len(samples) > max_samples:
        keep = np.linspace(0, len(samples) - 1, max_samples).round().astype(int)
        samples = [samples[i] for i in keep]
    return samples
