"""``edge-vad calibrate BUNDLE --data NORMAL --out NEW``: refit a bundle's score where it will run.

Torch-free: the bundle's own backend computes the error maps through the runtime's CameraStream
(conditioning included), ``edge_vad.scoring.calibrate`` fits them, and a new bundle is written with
the new calibration in its manifest (its graph files are copied unchanged, their checksums checked
again on load) and an id that says it was recalibrated.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
from pathlib import Path

from edge_vad.data.frames import parse_range, read_frames, video_info
from edge_vad.errors import EdgeVadError
from edge_vad.runtime.bundle.loader import load_bundle
from edge_vad.runtime.bundle.manifest import MANIFEST
from edge_vad.scoring.calibrate import calibrate_on_footage
from edge_vad.scoring.streaming import DEFAULT_ALERTS_PER_HOUR, Calibration

SCORE_OPTIONS = {"score_grid": "grid", "score_topk": "topk", "score_ema": "ema", "score_agg": "agg"}


def stream_maps_of(bundle, threads: int | None = None, conditioning: bool = True):
    """``maps_of`` through the runtime itself: one CameraStream (one backend), reset for each segment."""
    from edge_vad.runtime.stream import CameraStream

    stream = CameraStream(bundle, threads=threads, conditioning=conditioning)

    def maps_of(frames):
        stream.reset()
        return [stream.step(f).error_map for f in frames]

    return maps_of


def footage_segments(bundle, data: Path | None, frames: str | None) -> tuple[list[list], dict, float]:
    """Normal footage to calibrate on: ``data`` (a range of it), else the blocks the bundle was calibrated on
    (held out from its training), each led in by the frames before it, so the stream has warmed up (its
    state, its background model) when the block starts: the block is scored, its lead-in is not."""
    if data is None:
        src = bundle.manifest.score.calibration.get("source") or {}
        path, blocks = src.get("path"), src.get("frames") or src.get("holdout")
        if not path or not Path(path).exists() or not blocks:
            raise EdgeVadError(f"{bundle.root}: no normal footage given and the footage it was calibrated on is not "
                               "here; pass --data NORMAL_VIDEO (footage of the camera it will watch)")
        data, lead = Path(path), bundle.manifest.warmup_frames
    else:
        if not Path(data).exists():
            raise EdgeVadError(f"--data {data}: no such file or folder")
        blocks, lead = [list(parse_range(frames, video_info(data).frames))], 0
    segments = [list(read_frames(data, max(0, a - lead), b)) for a, b in blocks]
    fps = bundle.manifest.input.fps or video_info(data).fps
    return segments, {"path": str(data), "frames": [list(b) for b in blocks], "lead_in": lead}, fps


def recalibrate_bundle(bundle_dir: Path, out: Path, data: Path | None = None, frames: str | None = None,
                       alerts_per_hour: float = DEFAULT_ALERTS_PER_HOUR, augment: bool = True,
                       overrides: dict | None = None, threads: int | None = None, log=print):
    bundle = load_bundle(bundle_dir)
    old = Calibration.from_dict(bundle.manifest.score.calibration)
    shape = {"grid": old.grid, "topk": old.topk, "ema": old.ema, "agg": old.agg}
    for key, value in (overrides or {}).items():
        if key not in SCORE_OPTIONS:
            raise EdgeVadError(f"--set {key}: a bundle's calibration takes {', '.join(SCORE_OPTIONS)} only "
                               "(the rest is in its graph: retrain and convert)")
        shape[SCORE_OPTIONS[key]] = value
    segments, source, fps = footage_segments(bundle, data, frames)
    log(f"scoring {sum(len(s) for s in segments)} normal frames of {source['path']} with {bundle.id}")
    calib = calibrate_on_footage(stream_maps_of(bundle, threads), segments, fps=fps, alerts_per_hour=alerts_per_hour,
                                 augment=augment, source=source, log=log, **shape)
    write_calibrated(bundle, calib, Path(out))
    log(f"{out}: {calib.describe()}")
    return calib


def write_calibrated(bundle, calib: Calibration, out: Path) -> Path:
    """A copy of ``bundle`` with ``calib`` in its manifest, verified by loading it; ``out`` may be the bundle."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".recalibrated-", dir=out.parent))
    try:
        for rel in list(bundle.manifest.files):
            dst = staging / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(bundle.root / rel, dst)
        payload = json.dumps(calib.to_dict(), sort_keys=True).encode()
        base = re.sub(r"\.cal[0-9a-f]{8}$", "", bundle.id)
        manifest = bundle.manifest.model_copy(update={
            "bundle_id": f"{base}.cal{hashlib.sha256(payload).hexdigest()[:8]}",
            "score": bundle.manifest.score.model_copy(update={"calibration": calib.to_dict()}),
        })
        (staging / MANIFEST).write_text(manifest.model_dump_json(indent=2))
        load_bundle(staging)
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
        out.chmod(0o755)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return out
