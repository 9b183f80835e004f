"""Frames from video files (anything OpenCV decodes) and from folders of images.

Folder layouts of the public benchmarks are one video per folder of images
(UCSD Ped2 ``Test001/001.tif``, CUHK Avenue and ShanghaiTech ``frames/01_0014/000.jpg``),
ordered by the numbers in their names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from edge_vad.errors import EdgeVadError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"}
# Image folders carry no frame rate; the benchmarks were all recorded near 25 fps.
DEFAULT_FOLDER_FPS = 25.0


@dataclass(frozen=True)
class VideoInfo:
    path: str
    fps: float
    frames: int
    width: int
    height: int


def _natural_key(path: Path):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


def image_files(folder: Path) -> list[Path]:
    files = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES]
    return sorted(files, key=_natural_key)


def _check_exists(path: Path) -> None:
    if not path.exists():
        raise EdgeVadError(f"{path}: no such video file or image folder")


def video_info(path: str | Path) -> VideoInfo:
    path = Path(path)
    _check_exists(path)
    if path.is_dir():
        files = image_files(path)
        if not files:
            raise EdgeVadError(f"{path}: folder holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        first = cv2.imread(str(files[0]), cv2.IMREAD_COLOR)
        if first is None:
            raise EdgeVadError(f"{files[0]}: not a readable image")
        return VideoInfo(str(path), DEFAULT_FOLDER_FPS, len(files), first.shape[1], first.shape[0])
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise EdgeVadError(f"{path}: OpenCV cannot open this video")
        fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
        return VideoInfo(
            str(path),
            float(fps) if fps > 0 else DEFAULT_FOLDER_FPS,
            int(cap.get(cv2.CAP_PROP_FRAME_COUNT)),
            int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
            int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
        )
    finally:
        cap.release()


def read_frames(path: str | Path, start: int = 0, stop: int | None = None) -> Iterator[np.ndarray]:
    """Yield BGR uint8 frames ``start <= i < stop`` of a video file or image folder."""
    path = Path(path)
    _check_exists(path)
    if path.is_dir():
        files = image_files(path)[start:stop]
        if not files:
            raise EdgeVadError(f"{path}: no images in frame range [{start}, {stop})")
        for f in files:
            img = cv2.imread(str(f), cv2.IMREAD_COLOR)
            if img is None:
                raise EdgeVadError(f"{f}: not a readable image")
            yield img
        return
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise EdgeVadError(f"{path}: OpenCV cannot open this video")
    try:
        # Seeking is unreliable for some codecs; decoding up to `start` is exact.
        index = 0
        while stop is None or index < stop:
            ok, frame = cap.read()
            if not ok:
                break
            if index >= start:
                yield frame
            index += 1
    finally:
        cap.release()


def parse_range(text: str | None, total: int) -> tuple[int, int]:
    if not text:
        return 0, total
    try:
        a, b = (part.strip() for part in text.split(":"))
        start, stop = int(a or 0), int(b) if b else total
    except ValueError:
        raise EdgeVadError(f"--frames {text!r}: expected START:STOP, e.g. 0:480") from None
    if not 0 <= start < stop <= total:
        raise EdgeVadError(f"--frames {text!r}: range must lie within 0:{total}")
    return start, stop
