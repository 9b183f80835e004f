"""The one table of deployment targets and their options, validated up front.

Every conversion starts by looking its target up here, so a typo or an option
the target does not support fails before any export work is done.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from edge_vad.errors import EdgeVadError

PRECISIONS = ("fp32", "fp16", "int8")


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
    # 7-bit INT8 weights: ONNX Runtime's x86 kernels without VNNI (AVX2) saturate 16-bit pair sums with
    # full-range weights, which on this machine inverted an INT8 model's score (converters/quantize.py).
    int8_reduce_range: bool = False

    def runnable_here(self) -> tuple[bool, str]:
        """Whether this machine can run (and so verify and bench) the target; the reason if not."""
        if self.backend == "onnxruntime":
            import onnxruntime as ort

            missing = [p for p in self.providers if p not in ort.get_available_providers()]
            return (not missing, f"ONNX Runtime here lacks {', '.join(missing)}" if missing else "")
        if self.backend == "openvino":
            if importlib.util.find_spec("openvino") is None:
                return False, "openvino not installed (pip install 'edge-vad[openvino]')"
            import openvino as ov

            devices = ov.Core().available_devices
            ok = any(d.split(".")[0] == self.device for d in devices)
            return ok, "" if ok else f"no OpenVINO {self.device} device here (have {', '.join(devices)})"
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
            int8_reduce_range=True,
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
            precisions=("fp32", "int8", "fp16"),
            device="CPU",
            graph_format="openvino-ir",
            description="OpenVINO IR on an Intel (or any x86-64/ARM64) CPU",
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
