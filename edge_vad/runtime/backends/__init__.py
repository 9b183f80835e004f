"""Inference backends, chosen by name from a bundle's target or a device profile.

Each backend lives in its own module and is imported only when chosen, so a
device needs only the engine it uses.
"""

from __future__ import annotations

import importlib
from typing import Protocol

import numpy as np

from edge_vad.errors import EdgeVadError


class Backend(Protocol):
    """``run`` takes and returns named arrays whose first axis is the batch (one row per camera).
    A backend that compiles per batch size may also offer ``prepare(batch_sizes)``, which the
    daemon calls at start-up for the cameras that share it (OpenVINO)."""

    name: str

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...


_BACKENDS = {
    "onnxruntime": "edge_vad.runtime.backends.onnxruntime:OnnxRuntimeBackend",
    "openvino": "edge_vad.runtime.backends.openvino:OpenVinoBackend",
    "tensorrt": "edge_vad.runtime.backends.tensorrt:TensorRtBackend",
}


def list_backends() -> list[str]:
    return sorted(_BACKENDS)


def create_backend(kind: str, model_path, **options) -> Backend:
    if kind not in _BACKENDS:
        raise EdgeVadError(f"unknown backend '{kind}'; available: {', '.join(list_backends())}")
    module, cls = _BACKENDS[kind].split(":")
    return getattr(importlib.import_module(module), cls)(model_path, **options)
