"""The one table of deployment targets and their options, validated up front.

Every conversion starts by looking its target up here, so a typo or an option
the target does not support fails before any export work is done.
"""

from __future__ import annotations

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
            import onnxruntime as ort

            missing = [p for p in self.providers if p not in ort.get_available_providers()]
            return (not missing, f"ONNX Runtime here lacks {', '.join(missing)}" if missing else "")
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
        ),
        Target(
            "tensorrt",
            backend="tensorrt",
            precisions=("fp16", "int8", "fp32"),
            device="cuda:0",
            builds_on_device=True,
            description="TensorRT engine on a desktop/server NVIDIA GPU, built on the machine",
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
