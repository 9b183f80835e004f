"""The one table of deployment targets and their options, validated up front (imported by the runtime too).

Every conversion starts by looking its target up here, so a typo or an option
the target does not support fails before any export work is done.
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass

from edge_vad.errors import EdgeVadError

PRECISIONS = ("fp32", "fp16", "int8", "bf16")
#: INT8 weight ranges: "auto" (what the converting CPU's kernels take: ``cpu_isa``), or forced
INT8_WEIGHTS = ("auto", "7-bit", "8-bit")


@dataclass(frozen=True)
class Target:
    name: str
    backend: str  # runtime backend that runs the bundle
    precisions: tuple[str, ...]  # first is the default
    providers: tuple[str, ...] = ()
    device: str | None = None  # OpenVINO device name / CUDA device
    graph_format: str = "onnx"  # what the bundle ships: "onnx" or "openvino-ir"
    # The engine is built on the device itself (TensorRT engines are not portable).
    builds_on_device: bool = False
    description: str = ""
    # INT8 weights in the range this machine's CPU kernels take (``cpu_isa``): 7-bit without VNNI, where
    # ONNX Runtime's and OpenVINO's x86 kernels saturate 16-bit pair sums with full-range weights (on an
    # AVX2 machine that inverted an INT8 model's score: converters/quantize.py), 8-bit with it. Targets run
    # by a GPU take full-range weights.
    int8_weights_follow_cpu: bool = False
    # Int32 bias DequantizeLinear nodes (ONNX Runtime's default): TensorRT's dequantize layer takes only
    # 8-bit inputs and refuses them ("only activation types allowed as input to this layer", onnx-tensorrt #850).
    int8_quantize_bias: bool = True

    def int8_weights(self, choice: str = "auto") -> str:
        """"7-bit" or "8-bit": ``choice`` if forced, else what this target and this machine's CPU take."""
        if choice not in INT8_WEIGHTS:
            raise EdgeVadError(f"int8 weights {choice!r}: choose one of {', '.join(INT8_WEIGHTS)}")
        if choice != "auto":
            return choice
        if not self.int8_weights_follow_cpu:
            return "8-bit"
        from edge_vad.runtime.backends.cpu_isa import cpu_isa

        return cpu_isa().int8_weights

    def runnable_here(self, precision: str | None = None) -> tuple[bool, str]:
        """Whether this machine can run (and so verify and bench) the target at ``precision``; the reason if not."""
        if self.backend == "onnxruntime":
            return _providers_start(self.providers, self.device)
        if self.backend == "openvino":
            if importlib.util.find_spec("openvino") is None:
                return False, "openvino not installed (pip install 'edge-vad[openvino]')"
            import openvino as ov

            core = ov.Core()
            devices = core.available_devices
            ok = any(d.split(".")[0] == self.device for d in devices)
            if not ok:
                return False, f"no OpenVINO {self.device} device here (have {', '.join(devices)})"
            if precision == "bf16" and "BF16" not in core.get_property(self.device, "OPTIMIZATION_CAPABILITIES"):
                from edge_vad.runtime.backends.cpu_isa import cpu_isa

                return False, (f"this {self.device} has no native bf16 ({cpu_isa().describe()}); OpenVINO would run "
                               "it at f32: bf16 needs AVX-512 BF16 or AMX (Xeon 3rd gen+, Zen 4+)")
            return True, ""
        if self.backend == "tensorrt":
            from edge_vad.runtime.backends.tensorrt_engine import gpu_available

            return gpu_available()
        return False, f"unknown backend {self.backend}"


@functools.lru_cache(maxsize=None)
def _providers_start(providers: tuple[str, ...], device: str | None) -> tuple[bool, str]:
    """Whether a session asked for ``providers`` really runs on them here. ONNX Runtime GPU builds list
    CUDA/TensorRT as available on any machine and fall back to CPU when they cannot start, so the
    answer comes from a session on a one-node graph."""
    import onnx
    import onnxruntime as ort

    from edge_vad.runtime.backends.onnxruntime import provider_options, why_not_running

    if list(providers) == ["CPUExecutionProvider"]:
        return True, ""
    absent = [p for p in providers if p not in ort.get_available_providers()]
    if absent:
        return False, f"ONNX Runtime here runs without {', '.join(absent)}: {why_not_running(absent)}"
    x = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])
    y = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])
    graph = onnx.helper.make_graph([onnx.helper.make_node("Relu", ["x"], ["y"])], "probe", [x], [y])
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])
    model.ir_version = 8
    try:
        session = ort.InferenceSession(model.SerializeToString(), providers=list(providers),
                                       provider_options=provider_options(list(providers), device))
    except Exception as exc:  # ORT raises its own types when a provider fails to start and no fallback is left
        return False, f"ONNX Runtime cannot start {', '.join(providers)} here ({exc})"
    missing = [p for p in providers if p not in session.get_providers()]
    return (not missing, f"ONNX Runtime here runs without {', '.join(missing)}: {why_not_running(missing)}"
            if missing else "")


TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target(
            "cpu",
            backend="onnxruntime",
            precisions=("fp32", "int8", "fp16"),
            providers=("CPUExecutionProvider",),
            description="ONNX Runtime on any CPU (x86-64, ARM64 such as Raspberry Pi 5)",
            int8_weights_follow_cpu=True,
        ),
        Target(
            "cuda",
            backend="onnxruntime",
            precisions=("fp16", "fp32", "int8"),
            providers=("CUDAExecutionProvider", "CPUExecutionProvider"),
            device="cuda:0",
            description="ONNX Runtime CUDA execution provider on a desktop NVIDIA GPU (onnxruntime-gpu)",
        ),
        Target(
            "cuda-trt",
            backend="onnxruntime",
            precisions=("fp16", "fp32", "int8"),
            providers=("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"),
            device="cuda:0",
            description="ONNX Runtime TensorRT execution provider (onnxruntime-gpu + TensorRT libraries)",
            int8_quantize_bias=False,
        ),
        Target(
            "openvino-cpu",
            backend="openvino",
            precisions=("fp32", "int8", "fp16", "bf16"),
            device="CPU",
            graph_format="openvino-ir",
            description="OpenVINO IR on an Intel (or any x86-64/ARM64) CPU; bf16 where the CPU has it natively",
            int8_weights_follow_cpu=True,
        ),
        Target(
            "openvino-gpu",
            backend="openvino",
            precisions=("fp16", "int8", "fp32"),
            device="GPU",
            graph_format="openvino-ir",
            description="OpenVINO IR on an Intel integrated/discrete GPU",
        ),
        Target(
            "openvino-npu",
            backend="openvino",
            precisions=("int8", "fp16"),
            device="NPU",
            graph_format="openvino-ir",
            description="OpenVINO IR on an Intel NPU (Core Ultra)",
        ),
        Target(
            "jetson",
            backend="tensorrt",
            precisions=("fp16", "int8", "fp32"),
            device="cuda:0",
            builds_on_device=True,
            description="TensorRT engine on NVIDIA Jetson (Orin, Xavier), built on the device",
            int8_quantize_bias=False,
        ),
        Target(
            "tensorrt",
            backend="tensorrt",
            precisions=("fp16", "int8", "fp32"),
            device="cuda:0",
            builds_on_device=True,
            description="TensorRT engine on a desktop/server NVIDIA GPU, built on the machine",
            int8_quantize_bias=False,
        ),
    )
}


def get_target(name: str, precision: str | None = None) -> tuple[Target, str]:
    if name not in TARGETS:
        raise EdgeVadError(f"unknown target '{name}'; targets: {', '.join(sorted(TARGETS))}")
    target = TARGETS[name]
    precision = precision or target.precisions[0]
    if precision not in target.precisions:
        raise EdgeVadError(
            f"target '{name}' does not support precision '{precision}'; supported: {', '.join(target.precisions)}"
        )
    return target, precision
