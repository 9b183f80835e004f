"""ONNX Runtime backend (CPU everywhere; CUDA/TensorRT providers on NVIDIA boxes)."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import numpy as np

import onnxruntime as ort

from edge_vad.errors import EdgeVadError
from edge_vad.runtime.backends.cache import cache_root


def provider_options(providers: list[str], device: str | None = None, precision: str | None = None,
                     env=None) -> list[dict]:
    """Options per provider: the GPU to run on; for TensorRT the precision and an engine and timing cache,
    so that the TensorRT provider does not rebuild its engines at every start."""
    from edge_vad.runtime.backends.cuda_runtime import device_index

    index = device_index(device) if device and str(device).startswith("cuda") else 0
    out = []
    for p in providers:
        if p == "CUDAExecutionProvider":
            out.append({"device_id": index})
        elif p == "TensorrtExecutionProvider":
            cache = cache_root(env)[0] / "onnxruntime-trt"
            out.append({"device_id": index, "trt_fp16_enable": precision == "fp16",
                        "trt_int8_enable": precision == "int8", "trt_engine_cache_enable": True,
                        "trt_engine_cache_path": str(cache), "trt_timing_cache_enable": True,
                        "trt_timing_cache_path": str(cache)})
        else:
            out.append({})
    return out


def _installed(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def why_not_running(missing: list[str]) -> str:
    """Why a session runs without providers that were asked for, and the fix."""
    cpu, gpu = _installed("onnxruntime"), _installed("onnxruntime-gpu")
    if cpu and gpu:
        return (f"both onnxruntime {cpu} and onnxruntime-gpu {gpu} are installed here; they share one folder "
                "and the CPU build's files replaced the GPU build's. Fix: pip uninstall -y onnxruntime && "
                f"pip install --force-reinstall --no-deps 'onnxruntime-gpu=={gpu}'")
    built_in = ort.get_available_providers()
    lacking = [p for p in missing if p not in built_in]
    if lacking:
        return (f"this ONNX Runtime (onnxruntime{'-gpu' if gpu else ''} {ort.__version__}) is built without "
                f"{', '.join(lacking)}. Fix: pip uninstall -y onnxruntime && pip install 'onnxruntime-gpu>=1.17' "
                "(docs/targets.md, 'ONNX Runtime on an NVIDIA GPU')")
    return (f"{', '.join(missing)} is built in but did not start: no usable NVIDIA GPU here, or the CUDA, cuDNN "
            "or TensorRT libraries it loads are missing (ONNX Runtime's warnings above name them)")


class OnnxRuntimeBackend:
    name = "onnxruntime"

    def __init__(self, model_path: Path, providers: list[str] | None = None, threads: int | None = None,
                 exact_qdq: bool = False, device: str | None = None, precision: str | None = None, **_ignored):
        # **_ignored: options meant for other backends (cache_dir, build_plan) when chosen by a profile.
        providers = list(providers or ["CPUExecutionProvider"])
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
            self.session = ort.InferenceSession(str(model_path), options, providers=providers,
                                                provider_options=provider_options(providers, device, precision))
        except Exception as exc:  # ORT raises its own exception types for bad files
            raise EdgeVadError(f"{model_path}: ONNX Runtime cannot load this model ({exc})") from exc
        # ONNX Runtime runs on CPU, with a warning at most, when an asked provider is absent or fails to
        # start; what the session really uses is only known now.
        self.providers = self.session.get_providers()
        missing = [p for p in providers if p not in self.providers]
        if missing:
            raise EdgeVadError(f"{model_path}: asked ONNX Runtime for {', '.join(providers)}, but the session "
                               f"runs on {', '.join(self.providers)}: {why_not_running(missing)}")
        self.output_names = [o.name for o in self.session.get_outputs()]

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(self.output_names, self.session.run(self.output_names, inputs)))
