"""``edge-vad convert``: checkpoint → ONNX step graph → parity check → bundle."""

from __future__ import annotations

import json
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from converters.onnx_export import export_step
from converters.parity import check_parity
from converters.targets import get_target
from edge_vad import __version__
from edge_vad.data.frames import read_frames, video_info
from edge_vad.data.preprocess import preprocess_many
from edge_vad.errors import EdgeVadError
from edge_vad.runtime.backends import create_backend
from edge_vad.runtime.bundle import load_bundle, sha256_file
from edge_vad.runtime.manifest import MANIFEST, Manifest

GRAPH_FILE = "model.onnx"
VERIFY_FILE = "verify.json"
PARITY_FRAMES = 40  # scored frames, after warm-up


def demo_clip() -> Path:
    return Path(__file__).resolve().parents[1] / "edge_vad/assets/demo/vtest_anomalies_demo.avi"


def _parity_source(info: dict, calib_data: Path | None) -> tuple[Path, int, int]:
    """Real normal frames to compare on: the user's, else the checkpoint's held-out range, else the demo clip."""
    if calib_data is not None:
        n = video_info(calib_data).frames
        return Path(calib_data), 0, n
    data = info.get("data", {})
    if data.get("path") and Path(data["path"]).exists() and data.get("holdout"):
        return Path(data["path"]), *data["holdout"][0]
    clip = demo_clip()
    if not clip.exists():
        raise EdgeVadError("no frames to verify the conversion on: pass --calib-data VIDEO")
    return clip, 0, video_info(clip).frames


def convert(ckpt: Path, target: str, out: Path, precision: str | None = None,
            calib_data: Path | None = None, threads: int | None = None, log=print) -> Manifest:
    tgt, precision = get_target(target, precision)
    from edge_vad.training import checkpoint as ckpt_io  # needs the train extra

    model, info = ckpt_io.load_model(Path(ckpt))
    calibration = ckpt_io.read_calibration(Path(ckpt))
    if calibration is None:
        raise EdgeVadError(f"{ckpt}: has no {ckpt_io.CALIBRATION}; training did not finish (run 'edge-vad train' again to resume)")

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".bundle-", dir=out.parent))
    try:
        log(f"exporting {info['model']}/{info['preset']} step graph to ONNX")
        graph = export_step(model, staging / GRAPH_FILE)
        step = model.step_module()
        state = [
            {"input": i, "output": o, "shape": list(s.shape), "dtype": "float32", "init": s.init}
            for i, o, s in zip(step.input_names[1:], step.output_names[2:], model.state_specs())
        ]
        backend = create_backend(tgt.backend, staging / GRAPH_FILE, providers=list(tgt.providers) or None, threads=threads)

        src, start, stop = _parity_source(info, calib_data)
        stop = min(stop, start + model.warmup_frames + PARITY_FRAMES)
        frames = preprocess_many(list(read_frames(src, start, stop)), model.input_spec())
        if len(frames) <= model.warmup_frames + 2:
            raise EdgeVadError(f"{src}: too few frames ({len(frames)}) to verify the conversion")
        report = check_parity(
            model, backend, {"frame": "frame", "error": "error", "error_map": "error_map"},
            [(s["input"], s["output"]) for s in state], frames, calibration,
        )
        log(report.summary() + f"  [{src.name} frames {start}:{stop}]")
        if not report.passed:
            raise EdgeVadError(f"converted model disagrees with PyTorch; bundle refused.\n{report.summary()}")
        verify = {"parity": report.to_dict(), "frames_source": {"path": str(src), "start": start, "stop": stop}}
        (staging / VERIFY_FILE).write_text(json.dumps(verify, indent=2))

        sha = sha256_file(staging / GRAPH_FILE)
        import onnx
        import onnxruntime
        import torch

        manifest = Manifest(
            bundle_id=f"{info['model']}-{info['preset']}-{tgt.name}-{precision}-{sha[:8]}",
            created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            model={"name": info["model"], "preset": info["preset"], "config": info["config"]},
            input=info["input"],
            graph={"file": GRAPH_FILE, "opset": graph["opset"], "precision": precision,
                   "inputs": graph["inputs"], "outputs": graph["outputs"]},
            state=state,
            warmup_frames=model.warmup_frames,
            score={"kind": "grid-z", "calibration": calibration,
                   "paper_score": "e(t) = sum over predicted frames of the L2 prediction error (graph output 'error')"},
            target={"name": tgt.name, "backend": tgt.backend, "precision": precision, "providers": list(tgt.providers)},
            files={GRAPH_FILE: sha, VERIFY_FILE: sha256_file(staging / VERIFY_FILE)},
            producer={"edge_vad": __version__, "torch": torch.__version__, "onnx": onnx.__version__,
                      "onnxruntime": onnxruntime.__version__},
            verify={"parity_passed": report.passed, "max_score_diff": report.max_score_diff},
        )
        (staging / MANIFEST).write_text(manifest.model_dump_json(indent=2))
        load_bundle(staging)  # the bundle must load exactly as a device will load it
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
        out.chmod(0o755)  # mkdtemp made it private; a bundle is meant to be shared
        log(f"bundle written to {out} ({manifest.bundle_id})")
        return manifest
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
