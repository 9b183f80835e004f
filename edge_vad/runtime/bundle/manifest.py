"""The bundle manifest: everything the runtime knows about a converted model.

The runtime reads nothing but this file and the files it lists (with their
sha256), so a bundle copied to a device describes itself completely.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TensorSpec(_Strict):
    name: str
    shape: list[int | str]
    dtype: Literal["float32", "float16", "int64", "uint8"] = "float32"


class StateTensor(_Strict):
    """A recurrent/memory tensor carried by the runtime from one step to the next."""

    input: str
    output: str
    shape: list[int]  # per camera, without the batch axis
    dtype: Literal["float32", "float16"] = "float32"
    init: Literal["zeros"] = "zeros"


class InputInfo(_Strict):
    color: Literal["gray", "rgb"]
    height: int = Field(gt=0)
    width: int = Field(gt=0)
    low: float = 0.0
    high: float = 1.0
    fps: float | None = None
    # Motion preprocessing the graph expects (edge_vad.data.motion), e.g. "flow"; optional so
    # earlier bundles keep loading.
    motion: str | None = None


class GraphInfo(_Strict):
    file: str
    # "openvino-ir": file is the .xml, its .bin sits beside it (and in `files`).
    format: Literal["onnx", "openvino-ir"] = "onnx"
    opset: int
    precision: Literal["fp32", "fp16", "int8", "bf16"] = "fp32"
    frame_input: str = "frame"
    error_output: str = "error"
    error_map_output: str = "error_map"
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    # OpenVINO: whether the runtime compiles one model per batch size with every input shape fixed
    # (faster) or runs the dynamic-batch model; the converter records the one its parity check
    # passed with. None (earlier bundles, other backends): fixed for float models, dynamic for INT8.
    fixed_shapes: bool | None = None
    # INT8 bundles: the weight range, chosen for the converting CPU (target.verified_cpu): "7-bit" where x86
    # kernels without VNNI would saturate, "8-bit" otherwise, or OpenVINO's "7-bit first layer" (NNCF's
    # overflow fix); None for float bundles.
    int8_weights: Literal["7-bit", "8-bit", "7-bit first layer"] | None = None


class ModelInfo(_Strict):
    name: str
    preset: str
    config: dict


class ScoreInfo(_Strict):
    """How raw model errors become the streaming score (see edge_vad.scoring.streaming)."""

    kind: Literal["grid-z"] = "grid-z"
    calibration: dict
    paper_score: str


class TargetInfo(_Strict):
    name: str
    backend: Literal["onnxruntime", "openvino", "tensorrt"]
    precision: Literal["fp32", "fp16", "int8", "bf16"]
    providers: list[str] = []
    # Added after the first bundles; optional so schema-1 bundles keep loading.
    device: str | None = None  # OpenVINO device name (CPU, GPU, NPU) or CUDA device
    build_plan: str | None = None  # TensorRT: JSON plan the engine is built from on the device
    # What the float arithmetic runs in, set explicitly at compile time (OpenVINO: INFERENCE_PRECISION_HINT
    # "f32", "bf16", "f16"); engines' defaults differ between CPUs. None: the backend's rule for `precision`.
    inference_precision: str | None = None
    # The CPU the bundle was converted and verified on (cpu_isa: arch, flags, vnni, native_bf16, summary).
    verified_cpu: dict | None = None


class Manifest(_Strict):
    schema_version: Literal[1] = SCHEMA_VERSION
    bundle_id: str
    created: str
    model: ModelInfo
    input: InputInfo
    graph: GraphInfo
    state: list[StateTensor]
    warmup_frames: int = Field(ge=0)
    score: ScoreInfo
    target: TargetInfo
    files: dict[str, str]  # relative path -> sha256
    producer: dict[str, str]
    verify: dict = {}

    # The id travels into MQTT payloads, file names and a root install script (edge-vad package);
    # paths are opened inside the bundle folder only.
    @field_validator("bundle_id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", v):
            raise ValueError("bundle_id: letters, digits, '.', '_' and '-' only (at most 128)")
        return v

    @field_validator("files")
    @classmethod
    def _inside(cls, v: dict[str, str]) -> dict[str, str]:
        for rel in v:
            p = PurePosixPath(rel)
            if p.is_absolute() or ".." in p.parts or "\\" in rel:
                raise ValueError(f"files: {rel!r} is not a path inside the bundle")
        return v
