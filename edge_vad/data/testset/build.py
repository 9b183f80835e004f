"""Files: the test set (video, labels, events.json) and the small demo clip."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from edge_vad.data.frames import read_frames, video_info
from edge_vad.data.labels import save_labels
from edge_vad.data.testset.render import inject_anomalies
from edge_vad.data.testset.scene import (
    DEFAULT_STOP,
    DEMO_MAX_BYTES,
    TRAIN_FRAMES,
    VIDEO_NAME,
)
from edge_vad.errors import EdgeVadError


def _check_range(video: Path, start: int, stop: int, validation: bool = False) -> int:
    if validation:
        # A validation set is for choosing designs (score aggregation, presets)
        # without looking at the test frames, so it must stay inside the training range.
        if stop > TRAIN_FRAMES:
            raise EdgeVadError(
                f"stop={stop}: a validation set is cut from the training range 0-{TRAIN_FRAMES - 1}; "
                f"frames {TRAIN_FRAMES}+ of {video} are for the test set only")
    elif start < TRAIN_FRAMES:
        raise EdgeVadError(
            f"start={start}: frames 0-{TRAIN_FRAMES - 1} of {video} are reserved for training; "
            f"the test set must start at frame {TRAIN_FRAMES} or later")
    total = video_info(video).frames
    if not start < stop <= total:
        raise EdgeVadError(f"{video}: frame range [{start}, {stop}) is empty or beyond its {total} frames")
    return total


def _injected(video: str | Path, start: int, stop: int, seed: int, validation: bool = False):
    video = Path(video)
    _check_range(video, start, stop, validation)
    frames = list(read_frames(video, start, stop))
    if len(frames) != stop - start:
        raise EdgeVadError(f"{video}: decoded {len(frames)} frames in [{start}, {stop}), expected {stop - start}")
    return inject_anomalies(frames, seed=seed)


def _write_video(path: Path, frames: list[np.ndarray], fps: float, scale: float, codec: str,
                 quality: int | None = None) -> None:
    if scale <= 0:
        raise EdgeVadError(f"scale={scale}: must be positive")
    h, w = frames[0].shape[:2]
    size = (max(2, round(w * scale)), max(2, round(h * scale)))
    fourcc = cv2.VideoWriter_fourcc(*codec)
    if quality is None:
        writer = cv2.VideoWriter(str(path), fourcc, fps, size)
    else:
        # Only OpenCV's own MJPEG encoder honours VIDEOWRITER_PROP_QUALITY; the
        # FFmpeg one that VideoWriter picks by default ignores it.
        writer = cv2.VideoWriter(str(path), cv2.CAP_OPENCV_MJPEG, fourcc, fps, size)
    if not writer.isOpened():
        raise EdgeVadError(f"{path}: OpenCV cannot write a video with codec {codec!r}")
    try:
        if quality is not None:
            writer.set(cv2.VIDEOWRITER_PROP_QUALITY, quality)
        for frame in frames:
            if size != (w, h):
                frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
            writer.write(frame)
    finally:
        writer.release()


def make_testset(video: str | Path, out_dir: str | Path, start: int = TRAIN_FRAMES, stop: int = DEFAULT_STOP,
                 seed: int = 0, scale: float = 1.0, codec: str = "MJPG", validation: bool = False) -> dict:
    """Write ``vtest_anomalies.avi``, ``labels.npy`` and ``events.json`` to ``out_dir``.

    ``validation=True`` cuts the set from the training range instead (use
    another seed): design choices are made on it, never on the test set.
    """
    frames, labels, events = _injected(video, start, stop, seed, validation)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"video": out_dir / VIDEO_NAME, "labels": out_dir / "labels.npy", "events": out_dir / "events.json"}
    fps = video_info(video).fps
    _write_video(paths["video"], frames, fps, scale, codec)
    save_labels(paths["labels"], labels)
    meta = {"source": str(video), "start": start, "stop": stop, "seed": seed, "scale": scale, "fps": fps,
            "frames": len(frames), "anomalous_frames": int(labels.sum()), "events": events}
    paths["events"].write_text(json.dumps(meta, indent=2) + "\n")
    return paths


def _demo_encodings(scale: float):
    """(scale, quality) to try in turn, smallest loss of detail first.

    On vtest.avi the FFmpeg MJPEG writer gives ~8 MB at scale 0.5, and OpenCV's
    own encoder, the only one that lowers JPEG quality, still gives ~7 MB at
    quality 20 (it keeps full-resolution chroma, costly on the grass). So after
    two quality steps the frame is made smaller instead (at scale 0.5: 352, 320,
    288, 272, 256 pixels wide, sizes JPEG's 8x8 blocks tile well).
    """
    yield scale, None
    yield scale, 60
    yield scale, 40
    for factor in (11 / 12, 5 / 6, 3 / 4, 17 / 24, 2 / 3, 1 / 2):
        yield scale * factor, None


def make_demo_clip(video: str | Path, out_path: str | Path, seed: int = 0, scale: float = 0.5) -> dict:
    """A small MJPG clip of the test set (<= 5 MB) with ``<name>.labels.npy`` beside it.

    ``scale`` is where the search for a size that fits starts; the returned
    dict says which scale and JPEG quality (None: the encoder's default) made it.
    """
    frames, labels, events = _injected(video, TRAIN_FRAMES, DEFAULT_STOP, seed)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fps = video_info(video).fps
    for used_scale, quality in _demo_encodings(scale):
        _write_video(out_path, frames, fps, used_scale, "MJPG", quality=quality)
        if out_path.stat().st_size <= DEMO_MAX_BYTES:
            break
    labels_path = out_path.with_suffix(".labels.npy")
    save_labels(labels_path, labels)
    h, w = frames[0].shape[:2]
    return {"video": out_path, "labels": labels_path, "scale": used_scale, "quality": quality,
            "size": (round(w * used_scale), round(h * used_scale)), "bytes": out_path.stat().st_size,
            "events": events}
