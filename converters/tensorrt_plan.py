"""TensorRT targets: what the bundle carries so the device can build its own engine.

The engine itself is built by edge_vad.runtime.backends.tensorrt_engine on the
device (or here, when this machine has TensorRT and a GPU).  INT8 is explicit
by default: the bundle's graph is the QDQ graph and TensorRT takes the scales
from it.  The entropy-calibrator route is kept for TensorRT builds that should
choose their own ranges: it needs the calibration inputs shipped with the bundle.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_vad.runtime.backends.tensorrt_engine import CALIB_FILE, PLAN_FILE, BuildPlan
from edge_vad.runtime.bundle.loader import sha256_file


def write_plan(bundle: Path, graph_file: str, precision: str, state: list[dict], model, profile=None,
               samples: list[dict] | None = None, int8_mode: str = "qdq") -> str:
    spec = model.input_spec()
    inputs = {"frame": [spec.channels, spec.height, spec.width], **{s["input"]: list(s["shape"]) for s in state}}
    calibration = None
    if precision == "int8" and int8_mode == "calibrator":
        stacked = {k: np.concatenate([s[k] for s in samples]).astype(np.float32) for k in samples[0]}
        np.savez_compressed(bundle / CALIB_FILE, **stacked)
        calibration = CALIB_FILE
    plan = BuildPlan(
        onnx=graph_file, onnx_sha256=sha256_file(bundle / graph_file), precision=precision, inputs=inputs,
        int8_mode=(int8_mode if precision == "int8" else None), calibration=calibration,
    )
    if profile is not None:
        plan = plan.for_profile(profile)
    (bundle / PLAN_FILE).write_text(plan.to_json())
    return PLAN_FILE
