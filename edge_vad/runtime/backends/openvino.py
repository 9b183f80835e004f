"""OpenVINO backend: IR (or ONNX) on an Intel CPU, GPU or NPU, with a compiled-model cache."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from edge_vad.errors import EdgeVadError, require

DEFAULT_CACHE = Path(os.environ.get("EDGE_VAD_CACHE", Path.home() / ".cache" / "edge-vad")) / "openvino"


class OpenVinoBackend:
    name = "openvino"

    def __init__(self, model_path: Path | None = None, device: str | None = None, threads: int | None = None,
                 cache_dir: Path | None = None, compiled=None, **_ignored):
        ov = require("openvino", "openvino", "Running a bundle with the OpenVINO backend")
        device = device or "CPU"
        if compiled is None:
            core = ov.Core()
            available = core.available_devices
            if not any(d.split(".")[0] == device.split(".")[0] for d in available):
                raise EdgeVadError(f"OpenVINO has no '{device}' device here (available: {', '.join(available)})")
            config = {"PERFORMANCE_HINT": "LATENCY"}
            if threads and device.startswith("CPU"):
                config["INFERENCE_NUM_THREADS"] = int(threads)
            # GPU and NPU compile for seconds to minutes; the cache makes the second start instant.
            cache = Path(cache_dir) if cache_dir else DEFAULT_CACHE
            try:
                cache.mkdir(parents=True, exist_ok=True)
                core.set_property({"CACHE_DIR": str(cache)})
            except OSError:
                pass  # a read-only home only costs the cache
            try:
                compiled = core.compile_model(str(model_path), device, config)
            except Exception as exc:  # OpenVINO raises RuntimeError subclasses for bad files/devices
                raise EdgeVadError(f"{model_path}: OpenVINO cannot compile this model for {device} ({exc})") from exc
        self.compiled = compiled
        self.request = compiled.create_infer_request()
        self.output_names = [o.get_any_name() for o in compiled.outputs]

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        result = self.request.infer(inputs)
        # Copies: the request reuses its output buffers on the next call, and the state is kept across calls.
        return {name: np.array(result[out]) for name, out in zip(self.output_names, self.compiled.outputs)}
