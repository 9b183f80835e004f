"""Where a bundle's model call spends its time, operator type by operator type.

Uses each engine's own profiler on the graph it actually runs (after its
fusions and layout changes, so ONNX Runtime's inserted NCHWc reorders and
OpenVINO's fused subgraphs show up as what they are): ONNX Runtime's session
profiler, OpenVINO's performance counters. The session is a second one, opened
with the same options as the runtime's, so profiling never slows a camera.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge_vad.errors import EdgeVadError, require
from edge_vad.runtime.bundle.loader import Bundle

# Kernels that do the counted dense work (edge_vad/benchmarking/flops.py counts Conv, ConvTranspose, MatMul, Gemm),
# under the names each engine reports after fusing activations or quantization into them.
DENSE_OPS = {
    "onnxruntime": {"Conv", "ConvTranspose", "MatMul", "Gemm", "FusedConv", "FusedMatMul", "FusedGemm",
                    "QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger", "MatMulIntegerToFloat"},
    "openvino": {"Convolution", "ConvolutionBackpropData", "GroupConvolution", "GroupConvolutionBackpropData",
                 "Deconvolution", "FullyConnected", "MatMul"},
}


@dataclass
class OpProfile:
    backend: str
    runs: int
    ms: dict[str, float] = field(default_factory=dict)  # per run, by operator type
    calls: dict[str, float] = field(default_factory=dict)  # kernels per run, by operator type

    @property
    def total_ms(self) -> float:
        return sum(self.ms.values())

    @property
    def dense_ms(self) -> float:
        return sum(v for k, v in self.ms.items() if k in DENSE_OPS[self.backend])

    def top(self, n: int = 6) -> list[tuple[str, float, float]]:
        """(operator type, ms per run, share of kernel time), largest first."""
        total = self.total_ms or 1.0
        return [(k, v, v / total) for k, v in sorted(self.ms.items(), key=lambda kv: -kv[1])[:n]]

    def table(self, n: int = 15) -> str:
        """Markdown: the ``n`` costliest operator types, their time per model call, share and kernel count."""
        dense = DENSE_OPS[self.backend]
        rows = [f"| {op}{' (dense)' if op in dense else ''} | {ms:.3f} | {100 * share:.1f}% | {self.calls[op]:.0f} |"
                for op, ms, share in self.top(n)]
        total = f"| all {len(self.ms)} types ({self.backend}, {self.runs} calls) | {self.total_ms:.3f} | 100% | " \
                f"{sum(self.calls.values()):.0f} |"
        return "\n".join(["| operator | ms per call | share | kernels per call |", "|---|---:|---:|---:|", *rows, total])

    def to_dict(self) -> dict:
        return {"backend": self.backend, "runs": self.runs, "ms": self.ms, "calls": self.calls}

    @classmethod
    def from_dict(cls, d: dict) -> "OpProfile":
        return cls(d["backend"], d["runs"], d["ms"], d["calls"])


def profile_ops(bundle: Bundle, feeds: list[dict[str, np.ndarray]], threads: int | None = None) -> OpProfile:
    """Run ``feeds`` (the inputs the runtime gave its backend, state included) once each under the profiler."""
    backend = bundle.manifest.target.backend
    if not feeds:
        raise EdgeVadError(f"{bundle.root}: nothing to profile (no recorded model inputs)")
    if backend == "onnxruntime":
        return _onnxruntime(bundle, feeds, threads)
    if backend == "openvino":
        return _openvino(bundle, feeds, threads)
    raise EdgeVadError(f"{bundle.root}: no operator profiler for the {backend} backend (onnxruntime, openvino)")


def _onnxruntime(bundle: Bundle, feeds, threads) -> OpProfile:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL  # as the runtime's session
    if threads:
        options.intra_op_num_threads = threads
    options.enable_profiling = True
    with tempfile.TemporaryDirectory(prefix="edge-vad-ops-") as tmp:
        options.profile_file_prefix = os.path.join(tmp, "ort")
        providers = bundle.manifest.target.providers or ["CPUExecutionProvider"]
        session = ort.InferenceSession(str(bundle.graph_path), options, providers=providers)
        session.run(None, feeds[0])  # first-call allocations are not the steady state
        for feed in feeds:
            session.run(None, feed)
        events = json.loads(Path(session.end_profiling()).read_text())
    runs = sorted((e for e in events if e.get("name") == "model_run"), key=lambda e: e["ts"])
    warm_end = runs[0]["ts"] + runs[0]["dur"] if runs else -1
    ms, calls = defaultdict(float), defaultdict(float)
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time") and e["ts"] > warm_end:
            op = e.get("args", {}).get("op_name", "?")
            ms[op] += e["dur"] / 1e3 / len(feeds)  # µs
            calls[op] += 1 / len(feeds)
    return OpProfile("onnxruntime", len(feeds), dict(ms), dict(calls))


def _openvino(bundle: Bundle, feeds, threads) -> OpProfile:
    ov = require("openvino", "openvino", "Profiling an OpenVINO bundle")
    from edge_vad.runtime.backends.openvino import inference_config, inference_precision_for, runtime_model

    target = bundle.manifest.target
    device = target.device or "CPU"
    # The same precision the runtime compiles with: a plugin default (bf16 on some CPUs) would profile another model.
    precision = target.inference_precision or inference_precision_for(device, target.precision)
    config = inference_config(device, precision, threads, perf_count=True)

    core = ov.Core()
    # The model the runtime runs for this batch (fixed input shapes or dynamic, as the bundle says).
    model = runtime_model(core.read_model(str(bundle.graph_path)), len(next(iter(feeds[0].values()))),
                          bundle.manifest.graph.fixed_shapes)
    compiled = core.compile_model(model, device, config)
    request = compiled.create_infer_request()
    request.infer(feeds[0])
    ms, calls = defaultdict(float), defaultdict(float)
    for feed in feeds:
        request.infer(feed)
        for info in request.profiling_info:
            if info.status == ov.ProfilingInfo.Status.EXECUTED:
                ms[info.node_type] += info.real_time.total_seconds() * 1e3 / len(feeds)
                calls[info.node_type] += 1 / len(feeds)
    return OpProfile("openvino", len(feeds), dict(ms), dict(calls))
