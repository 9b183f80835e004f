"""OpenVINO backend: IR (or ONNX) on an Intel CPU, GPU or NPU, with a compiled-model cache.

Bundles are exported with a dynamic batch axis so that cameras can share a call. OpenVINO runs a
model with any dynamic dimension through its dynamic-shape path, which re-infers shapes and
re-plans memory on every call: 0.3–0.6 ms per call on this project's small step graphs (15–30 %
of a carried ConvLSTM step, ``docs/performance.md``). So the backend compiles the model once per
batch size it meets, with every input shape fixed, and keeps the compiled models (INT8 models
excepted: ``runtime_model``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from edge_vad.errors import EdgeVadError, require

DEFAULT_CACHE = Path(os.environ.get("EDGE_VAD_CACHE", Path.home() / ".cache" / "edge-vad")) / "openvino"
# Batch sizes compiled with fixed shapes; beyond them the dynamic model serves (memory stays bounded).
MAX_FIXED_BATCHES = 8


def with_batch(model, batch: int):
    """A copy of ``model`` with every input's first axis fixed to ``batch``, or None when another
    axis is dynamic (then only the dynamic model can run it)."""
    shapes = {}
    for inp in model.inputs:
        shape = inp.get_partial_shape()
        if shape.rank.is_dynamic or any(d.is_dynamic for d in list(shape)[1:]):
            return None
        shapes[inp.get_any_name()] = [batch] + [d.get_length() for d in list(shape)[1:]]
    fixed = model.clone()
    fixed.reshape(shapes)
    return fixed


def has_fake_quantize(model) -> bool:
    return any(op.get_type_name() == "FakeQuantize" for op in model.get_ops())


def runtime_model(model, batch: int, fixed_shapes: bool | None = None):
    """The model the backend compiles for ``batch`` rows: input shapes fixed when ``fixed_shapes``
    (the bundle's ``graph.fixed_shapes``, the mode its conversion was verified in), the dynamic model
    when False. None, a bundle that does not say: fixed except for INT8 (FakeQuantize) models. On this
    project's AVX2 CPU OpenVINO's fixed-shape INT8 kernels moved bisho's carried scores far from FP32
    (score correlation 0.954 against 0.9994 for the same IR); other models' passed."""
    if fixed_shapes is False or (fixed_shapes is None and has_fake_quantize(model)):
        return model
    return with_batch(model, batch) or model


class _Compiled:
    """One compiled model, its request and its output names."""

    def __init__(self, compiled):
        self.compiled = compiled
        self.request = compiled.create_infer_request()
        self.outputs = [(o.get_any_name(), o) for o in compiled.outputs]
        # Every name of every input: a port can carry several (a state input named like an output).
        self.dtypes = {n: i.get_element_type().to_dtype() for i in compiled.inputs for n in i.get_names()}


class OpenVinoBackend:
    name = "openvino"

    def __init__(self, model_path: Path | None = None, device: str | None = None, threads: int | None = None,
                 cache_dir: Path | None = None, compiled=None, model=None, fixed_shapes: bool | None = None,
                 **_ignored):
        """From a bundle's ``model_path``; or from an in-memory ``model`` (``ov.Model``: the converter's
        INT8 trials, run exactly as a bundle will be, without filling the compile cache); or from a
        caller's ``compiled`` model, run as given (NNCF's accuracy-control callback)."""
        self._ov = require("openvino", "openvino", "Running a bundle with the OpenVINO backend")
        self._model = None
        self._fixed_shapes = fixed_shapes
        self._fixed: dict[int, _Compiled] = {}
        self._dynamic: _Compiled | None = _Compiled(compiled) if compiled is not None else None
        if compiled is not None:
            return
        device = device or "CPU"
        core = self._ov.Core()
        available = core.available_devices
        if not any(d.split(".")[0] == device.split(".")[0] for d in available):
            raise EdgeVadError(f"OpenVINO has no '{device}' device here (available: {', '.join(available)})")
        config = {"PERFORMANCE_HINT": "LATENCY"}
        if threads and device.startswith("CPU"):
            config["INFERENCE_NUM_THREADS"] = int(threads)
        self._core, self._device, self._config = core, device, config
        self._path = model_path if model is None else "in-memory model"
        if model is not None:
            self._model = model
        else:
            # GPU and NPU compile for seconds to minutes; the cache makes the second start instant.
            cache = Path(cache_dir) if cache_dir else DEFAULT_CACHE
            try:
                cache.mkdir(parents=True, exist_ok=True)
                core.set_property({"CACHE_DIR": str(cache)})
            except OSError:
                pass  # a read-only home only costs the cache
            try:
                self._model = core.read_model(str(model_path))
            except Exception as exc:  # OpenVINO raises RuntimeError subclasses for bad files
                raise EdgeVadError(f"{model_path}: OpenVINO cannot read this model ({exc})") from exc
        self.prepare([1])  # one camera, the common case: compiled before the first frame

    def _compile(self, model) -> _Compiled:
        try:
            return _Compiled(self._core.compile_model(model, self._device, self._config))
        except Exception as exc:
            raise EdgeVadError(f"{self._path}: OpenVINO cannot compile this model for {self._device} ({exc})") from exc

    def prepare(self, batch_sizes) -> None:
        """Compile the fixed-shape models for these batch sizes now rather than at their first call
        (60–150 ms each on a CPU); the daemon asks for 1..N when N cameras share this backend."""
        for n in batch_sizes:
            self._for_batch(int(n))

    def _for_batch(self, n: int) -> _Compiled:
        found = self._fixed.get(n)
        if found is not None:
            return found
        if self._model is not None and len(self._fixed) < MAX_FIXED_BATCHES:
            model = runtime_model(self._model, n, self._fixed_shapes)
            if model is not self._model:
                found = self._fixed[n] = self._compile(model)
                return found
        if self._dynamic is None:
            self._dynamic = self._compile(self._model)
        return self._dynamic

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        target = self._for_batch(len(next(iter(inputs.values()))))
        request = target.request
        # Shared with OpenVINO, not copied: ``arrays`` holds them (and any converted copy made here)
        # until this synchronous call returns.
        arrays = [(name, np.ascontiguousarray(value, dtype=target.dtypes[name])) for name, value in inputs.items()]
        for name, value in arrays:
            request.set_tensor(name, self._ov.Tensor(value, shared_memory=True))
        request.infer()
        # Copies: the request reuses its output buffers on the next call, and the state is kept across calls.
        return {name: request.get_tensor(out).data.copy() for name, out in target.outputs}
