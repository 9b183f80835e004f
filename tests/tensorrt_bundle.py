"""A shipped bundle turned into what ``convert --target jetson/tensorrt`` writes: the same FP32 ONNX graph
(TensorRT builds FP16 and calibrated INT8 from it) plus a build plan, listed in the manifest."""

from __future__ import annotations

import json
import shutil

import numpy as np

from helpers import REPO

from edge_vad.runtime.backends.tensorrt_engine import CALIB_FILE, PLAN_FILE, BuildPlan
from edge_vad.runtime.bundle.loader import sha256_file
from edge_vad.runtime.bundle.manifest import MANIFEST


def tensorrt_bundle(dest, model: str = "stconvlstm", precision: str = "fp16", max_cameras: int = 4,
                    calibration: dict[str, np.ndarray] | None = None):
    root = dest / f"{model}-{precision}"
    shutil.copytree(REPO / f"edge_vad/assets/bundles/{model}-edge", root)
    manifest = json.loads((root / MANIFEST).read_text())
    inputs = {i["name"]: i["shape"][1:] for i in manifest["graph"]["inputs"]}
    if calibration is not None:
        np.savez_compressed(root / CALIB_FILE, **calibration)
        manifest["files"][CALIB_FILE] = sha256_file(root / CALIB_FILE)
    plan = BuildPlan(onnx="model.onnx", onnx_sha256=sha256_file(root / "model.onnx"), precision=precision,
                     inputs=inputs, int8_mode="calibrator" if calibration is not None else None,
                     calibration=CALIB_FILE if calibration is not None else None).with_profile(max_cameras=max_cameras)
    (root / PLAN_FILE).write_text(plan.to_json())
    manifest["target"].update(name="tensorrt", backend="tensorrt", precision=precision, providers=[], device="cuda:0",
                              build_plan=PLAN_FILE)
    manifest["files"][PLAN_FILE] = sha256_file(root / PLAN_FILE)
    (root / MANIFEST).write_text(json.dumps(manifest))
    return root, plan
