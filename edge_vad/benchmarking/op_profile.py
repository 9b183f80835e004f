"""Where a bundle's model call spends its time, operator type by operator type.

Uses each engine's own profiler on the graph it actually runs (after its
fusions and layout changes, so ONNX Runtime's inserted NCHWc reorders and
OpenVINO's fused subgraphs show up as what they are): ONNX Runtime's session
profiler, OpenVINO's performance counters. The session is a second one, opened
with the same options as the runtime's, so profiling never slows a camera.

Each operator type's time is its median over the profiled calls (a call the OS
descheduled would otherwise count in every row). ONNX Runtime's profiler costs
time inside each kernel it records (measured here: a 140-kernel model whose call
takes 0.4 ms unprofiled reported 1-10 ms of kernels at 2 threads, more on a busy
machine): when its kernels add up to more than the call measured without the
profiler, which they cannot really take, the times are scaled down to that call
and the table says so; the shares stay the profiler's.
"""

from __future__ import annotations

import bisect
import json
import os
import statistics
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


# One profiled call: operator type -> (ms, kernels).
CallOps = dict[str, tuple[float, int]]


@dataclass
class OpProfile:
    backend: str
    runs: int
    ms: dict[str, float] = field(default_factory=dict)  # per call, by operator type (median over the calls)
    calls: dict[str, float] = field(default_factory=dict)  # kernels per call, by operator type
    profiled_ms: float | None = None  # what the profiler's kernels add up to per call, before any scaling
    call_ms: float | None = None  # the model call measured without the profiler (median), when known

    @classmethod
    def summarise(cls, backend: str, per_call: list[CallOps], call_ms: float | None = None) -> "OpProfile":
        """Median per operator type over the calls; scaled to ``call_ms`` if the kernels add up to more."""
        ops = sorted(set().union(*per_call)) if per_call else []
        ms = {op: statistics.median(c.get(op, (0.0, 0))[0] for c in per_call) for op in ops}
        calls = {op: statistics.median(c.get(op, (0.0, 0))[1] for c in per_call) for op in ops}
        profiled = sum(ms.values())
        if call_ms and profiled > call_ms:
            ms = {op: v * call_ms / profiled for op, v in ms.items()}
        return cls(backend, len(per_call), ms, calls, profiled, call_ms)

    @property
    def scaled(self) -> bool:
        return bool(self.call_ms and self.profiled_ms and self.profiled_ms > self.call_ms)

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
        total = f"| all {len(self.ms)} types ({self.backend}, {self.runs} calls, medians) | {self.total_ms:.3f} | 100% | " \
                f"{sum(self.calls.values()):.0f} |"
        lines = ["| operator | ms per call | share | kernels per call |", "|---|---:|---:|---:|", *rows, total]
        if self.scaled:
            lines.append(f"\nThe profiler's kernels added up to {self.profiled_ms:.3f} ms per call, more than the "
                         f"{self.call_ms:.3f} ms the call takes without it (its own cost); the times above are its "
                         "shares of that call.")
        elif self.call_ms:
            lines.append(f"\nThe model call takes {self.call_ms:.3f} ms without the profiler; the rest of it is "
                         "the engine's own work between kernels.")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"backend": self.backend, "runs": self.runs, "ms": self.ms, "calls": self.calls,
                "profiled_ms": self.profiled_ms, "call_ms": self.call_ms}

    @classmethod
    def from_dict(cls, d: dict) -> "OpProfile":
        return cls(d["backend"], d["runs"], d["ms"], d["calls"], d.get("profiled_ms"), d.get("call_ms"))


def profile_ops(bundle: Bundle, feeds: list[dict[str, np.ndarray]], threads: int | None = None,
                call_ms: float | None = None) -> OpProfile:
    """Run ``feeds`` (the inputs the runtime gave its backend, state included) once each under the profiler;
    ``call_ms``: the model call as timed without the profiler, the most its kernels can add up to."""
    backend = bundle.manifest.target.backend
    if not feeds:
        raise EdgeVadError(f"{bundle.root}: nothing to profile (no recorded model inputs)")
    if backend == "onnxruntime":
        return OpProfile.summarise(backend, _onnxruntime(bundle, feeds, threads), call_ms)
    if backend == "openvino":
        return OpProfile.summarise(backend, _openvino(bundle, feeds, threads), call_ms)
    raise EdgeVadError(f"{bundle.root}: no operator profiler for the {backend} backend (onnxruntime, openvino)")


def _onnxruntime(bundle: Bundle, feeds, threads) -> list[CallOps]:
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
    return onnxruntime_calls(events)[1:]  # the first call's allocations are not the steady state


def onnxruntime_calls(events: list[dict]) -> list[CallOps]:
    """ONNX Runtime profile events -> per model call (``model_run``), each kernel's time by operator type."""
    runs = sorted((e for e in events if e.get("name") == "model_run"), key=lambda e: e["ts"])
    starts = [r["ts"] for r in runs]
    per_call: list[dict] = [defaultdict(lambda: [0.0, 0]) for _ in runs]
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"):
            i = bisect.bisect_right(starts, e["ts"]) - 1
            if i < 0 or e["ts"] > runs[i]["ts"] + runs[i]["dur"]:
                continue  # outside every call (none are, in the profiles seen)
            slot = per_call[i][e.get("args", {}).get("op_name", "?")]
            slot[0] += e["dur"] / 1e3  # µs -> ms
            slot[1] += 1
    return [{op: (ms, n) for op, (ms, n) in call.items()} for call in per_call]


def _openvino(bundle: Bundle, feeds, threads) -> list[CallOps]:
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
    per_call = []
    for feed in feeds:
        request.infer(feed)
        call: dict = defaultdict(lambda: [0.0, 0])
        for info in request.profiling_info:
            if info.status == ov.ProfilingInfo.Status.EXECUTED:
                call[info.node_type][0] += info.real_time.total_seconds() * 1e3
                call[info.node_type][1] += 1
        per_call.append({op: (ms, n) for op, (ms, n) in call.items()})
    return per_call
