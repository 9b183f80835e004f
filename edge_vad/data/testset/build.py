"""Files: the test set (video, labels, events.json) and the small demo clip."""

from __future__ import annotations

import itertools
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


def _frames(video: str | Path, start: int, stop: int, validation: bool = False) -> list[np.ndarray]:
    video = Path(video)
    _check_range(video, start, stop, validation)
    frames = list(read_frames(video, start, stop))
    if len(frames) != stop - start:
        raise EdgeVadError(f"{video}: decoded {len(frames)} frames in [{start}, {stop}), expected {stop - start}")
    return frames


def _injected(video: str | Path, start: int, stop: int, seed: int, validation: bool = False):
    return inject_anomalies(_frames(video, start, stop, validation), seed=seed)


def _write_video(path: Path, frames, fps: float, scale: float, codec: str, quality: int | None = None) -> int:
    """Write ``frames`` (any iterable: a long stream is never held in memory); returns how many."""
    if scale <= 0:
        raise EdgeVadError(f"scale={scale}: must be positive")
    frames = iter(frames)
    first = next(frames, None)
    if first is None:
        raise EdgeVadError(f"{path}: no frames to write")
    h, w = first.shape[:2]
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
        count = 0
        for frame in itertools.chain([first], frames):
            if size != (w, h):
                frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
            writer.write(frame)
            count += 1
    finally:
        writer.release()
    return count


INDEX = "testset.json"
STILL_VIDEO = "still_anomalies.avi"
PARTS = ("moving", "still", "soak")


def make_testset(video: str | Path, out_dir: str | Path, start: int = TRAIN_FRAMES, stop: int = DEFAULT_STOP,
                 seed: int = 0, scale: float = 1.0, codec: str = "MJPG", validation: bool = False,
                 soak_minutes: float = 10.0, parts: tuple[str, ...] = PARTS, progress=None) -> dict:
    """Write the test set to ``out_dir`` and its index ``testset.json``; returns the paths written.

    * ``moving``: ``vtest_anomalies.avi`` + ``labels.npy`` + ``events.json`` (fast movers, vehicles, thrown
      objects), and ``counterfactual.avi``: the same frames without them (the runner walks instead);
    * ``still``: ``still_anomalies.avi`` + ``still_labels.npy`` (a bag left behind, a person lying on the
      ground, someone standing where nobody goes) on the frames played forwards then backwards, and
      ``still_counterfactual.avi``: those frames untouched;
    * ``soak``: ``soak/NAME.avi`` for each normal variant (``soak.VARIANTS``) and ``soak/random.avi``, a
      seeded ``soak_minutes`` stream mixing them. Every soak frame is normal.

    ``validation=True`` cuts the set from the training range instead (use another seed): design choices
    are made on it, never on the test set.
    """
    from edge_vad.data.testset.soak import VARIANTS, random_stream, soak_variant

    unknown = set(parts) - set(PARTS)
    if unknown:
        raise EdgeVadError(f"test set parts {sorted(unknown)}: choose from {', '.join(PARTS)}")
    frames = _frames(video, start, stop, validation)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fps = video_info(video).fps
    say = progress or (lambda message: None)
    paths: dict[str, Path] = {}
    index: dict = {"source": str(video), "start": start, "stop": stop, "seed": seed, "scale": scale, "fps": fps,
                   "validation": validation, "clips": {}, "soak": {}}

    def write(name: str, clip: list[np.ndarray]) -> str:
        path = out_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_video(path, clip, fps, scale, codec)
        paths[name] = path
        return name

    if "moving" in parts:
        say("moving anomalies and their counterfactual")
        clip, labels, events = inject_anomalies(frames, seed=seed)
        twin, _, twin_events = inject_anomalies(frames, seed=seed, counterfactual=True)
        write(VIDEO_NAME, clip)
        paths["video"] = paths.pop(VIDEO_NAME)
        save_labels(out_dir / "labels.npy", labels)
        meta = {"source": str(video), "start": start, "stop": stop, "seed": seed, "scale": scale, "fps": fps,
                "frames": len(frames), "anomalous_frames": int(labels.sum()), "events": events}
        (out_dir / "events.json").write_text(json.dumps(meta, indent=2) + "\n")
        paths.update({"labels": out_dir / "labels.npy", "events": out_dir / "events.json"})
        index["clips"]["moving"] = {"video": VIDEO_NAME, "labels": "labels.npy", "frames": len(frames),
                                    "counterfactual": write("counterfactual.avi", twin), "events": events,
                                    "counterfactual_events": twin_events, "base": "forwards"}
    if "still" in parts:
        say("anomalies of appearance and stillness")
        base = frames + frames[::-1]
        clip, labels, events = inject_anomalies(base, seed=seed, kinds="still")
        save_labels(out_dir / "still_labels.npy", labels)
        paths["still_labels"] = out_dir / "still_labels.npy"
        index["clips"]["still"] = {"video": write(STILL_VIDEO, clip), "labels": "still_labels.npy",
                                   "frames": len(base), "counterfactual": write("still_counterfactual.avi", base),
                                   "events": events, "counterfactual_events": [], "base": "forwards, then backwards"}
    if "soak" in parts:
        for name, variant in VARIANTS.items():
            say(f"soak: {name}")
            index["soak"][name] = {"video": write(f"soak/{name}.avi", soak_variant(frames, name, seed)),
                                   "frames": len(frames), "description": variant.description}
        if soak_minutes > 0:
            say(f"soak: a {soak_minutes:g}-minute random stream")
            segments: list = []

            def stream():
                for i, (frame, name) in enumerate(random_stream(frames, soak_minutes, fps, seed)):
                    if not segments or segments[-1][1] != name:
                        segments.append([i, name])
                    yield frame

            path = out_dir / "soak/random.avi"
            n = _write_video(path, stream(), fps, scale, codec)
            paths["soak/random.avi"] = path
            index["soak"]["random"] = {"video": "soak/random.avi", "frames": n,
                                       "description": f"{soak_minutes:g} minutes mixing the variants (seeded)",
                                       "segments": segments}
    (out_dir / INDEX).write_text(json.dumps(index, indent=2) + "\n")
    paths["index"] = out_dir / INDEX
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
