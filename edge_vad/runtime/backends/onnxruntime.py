"""ONNX Runtime backend (CPU everywhere; CUDA/TensorRT providers on NVIDIA boxes)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import onnxruntime as ort

from edge_vad.errors import EdgeVadError


class OnnxRuntimeBackend:
    name = "onnxruntime"

    def __init__(self, model_path: Path, providers: list[str] | None = None, threads: int | None = None,
                 exact_qdq: bool = False, **_ignored):
        # **_ignored: options meant for other backends (device, cache_dir) when chosen by a profile.
        available = ort.get_available_providers()
        providers = providers or ["CPUExecutionProvider"]
        missing = [p for p in providers if p not in available]
        if missing:
            raise EdgeVadError(
                f"ONNX Runtime here has no {', '.join(missing)} (available: {', '.join(available)}); "
                "install onnxruntime-gpu for CUDA/TensorRT providers"
            )
        options = ort.SessionOptions()
        # exact_qdq: no Q/DQ fusion into integer kernels, so a QDQ graph runs as the arithmetic it writes
        # down (a converter checking a graph meant for TensorRT on a CPU); everything else: all optimizations.
        options.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_BASIC if exact_qdq
                                            else ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
        if threads:
            options.intra_op_num_threads = threads
        # Float stays float on every CPU: ORT can run ARM64 GEMMs in bf16 ("fastmath"); edge-vad never relies
        # on an engine's default precision, so this is set, not assumed.
        options.add_session_config_entry("mlas.enable_gemm_fastmath_arm64_bfloat16", "0")
        try:
            self.session = ort.InferenceSession(str(model_path), options, providers=providers)
        except Exception as exc:  # ORT raises its own exception types for bad files
            raise EdgeVadError(f"{model_path}: ONNX Runtime cannot load this model ({exc})") from exc
        self.output_names = [o.name for o in self.session.get_outputs()]

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(self.output_names, self.session.run(self.output_names, inputs)))
