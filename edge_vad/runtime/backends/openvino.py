"""OpenVINO backend: IR (or ONNX) on an Intel CPU, GPU or NPU, with a compiled-model cache.

Bundles are exported with a dynamic batch axis so that cameras can share a call. OpenVINO runs a
model with any dynamic dimension through its dynamic-shape path, which re-infers shapes and
re-plans memory on every call: 0.3–0.6 ms per call on this project's small step graphs (15–30 %
of a carried ConvLSTM step, ``docs/performance.md``). So the backend compiles the model once per
batch size it meets, with every input shape fixed, and keeps the compiled models (INT8 models
excepted: ``runtime_model``).

The inference precision is always set, never left to the plugin: on CPUs with native bf16 (AVX-512
BF16, AMX) OpenVINO's CPU default is bf16, which ran "fp32" bundles at a 4e-2 relative deviation
and failed their parity checks. ``inference_config`` is the one place the compile options are made,
for the runtime, the converter's checks and the benchmarks alike.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from edge_vad.errors import EdgeVadError, require

log = logging.getLogger("edge_vad.openvino")

DEFAULT_CACHE = Path(os.environ.get("EDGE_VAD_CACHE", Path.home() / ".cache" / "edge-vad")) / "openvino"
# Batch sizes compiled with fixed shapes; beyond them the dynamic model serves (memory stays bounded).
MAX_FIXED_BATCHES = 8


#: what the float arithmetic of a bundle runs in, per device and bundle precision; a precision a device
#: does not list is left to the device (the NPU computes in f16 whatever it is asked)
INFERENCE_PRECISION = {
    "CPU": {"fp32": "f32", "fp16": "f32", "int8": "f32", "bf16": "bf16"},
    "GPU": {"fp32": "f32", "fp16": "f16", "int8": "f16"},
}


def inference_precision_for(device: str, precision: str) -> str | None:
    """The inference precision a bundle of ``precision`` gets on an OpenVINO ``device``."""
    return INFERENCE_PRECISION.get(device.split(".")[0], {}).get(precision)


def inference_config(device: str, inference_precision: str | None, threads: int | None = None,
                     perf_count: bool = False) -> dict:
    """Compile options: latency-oriented, the inference precision pinned, threads if given."""
    config: dict = {"PERFORMANCE_HINT": "LATENCY"}
    if inference_precision:
        config["INFERENCE_PRECISION_HINT"] = inference_precision
    if threads and device.startswith("CPU"):
        config["INFERENCE_NUM_THREADS"] = int(threads)
    if perf_count:
        config["PERF_COUNT"] = True
    return config


def effective_precision(compiled) -> str | None:
    """What a compiled model really computes in: a CPU without native bf16 runs a bf16 request at f32."""
    try:
        return compiled.get_property("INFERENCE_PRECISION_HINT").to_string()
    except Exception:  # noqa: BLE001 - a device without the property (NPU) decides on its own
        return None


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
                 precision: str = "fp32", inference_precision: str | None = None, **_ignored):
        """From a bundle's ``model_path``; or from an in-memory ``model`` (``ov.Model``: the converter's
        INT8 trials, run exactly as a bundle will be, without filling the compile cache); or from a
        caller's ``compiled`` model, run as given (NNCF's accuracy-control callback).
        ``inference_precision`` ("f32", "bf16", "f16": the bundle's ``target.inference_precision``) is
        what the float arithmetic runs in; without it, what ``INFERENCE_PRECISION`` gives the bundle's
        ``precision`` on this device (bundles converted before it was recorded)."""
        self._ov = require("openvino", "openvino", "Running a bundle with the OpenVINO backend")
        self._model = None
        self.inference_precision = inference_precision
        self.effective_precision: str | None = effective_precision(compiled) if compiled is not None else None
        self._fixed_shapes = fixed_shapes
        self._fixed: dict[int, _Compiled] = {}
        self._dynamic: _Compiled | None = _Compiled(compiled) if compiled is not None else None
        if compiled is not None:
            return
        device = device or "CPU"
        self.inference_precision = inference_precision or inference_precision_for(device, precision)
        core = self._ov.Core()
        available = core.available_devices
        if not any(d.split(".")[0] == device.split(".")[0] for d in available):
            raise EdgeVadError(f"OpenVINO has no '{device}' device here (available: {', '.join(available)})")
        config = inference_config(device, self.inference_precision, threads)
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
            compiled = self._core.compile_model(model, self._device, self._config)
        except Exception as exc:
            raise EdgeVadError(f"{self._path}: OpenVINO cannot compile this model for {self._device} ({exc})") from exc
        got = effective_precision(compiled)
        if self.effective_precision is None and got and self.inference_precision and got != self.inference_precision:
            # Only bf16 can be refused this way (a CPU without AVX-512 BF16/AMX); f32 is then more exact, and slower.
            log.warning("%s: asks for %s inference; this %s runs %s (no native support)", self._path,
                        self.inference_precision, self._device, got)
        self.effective_precision = got
        return _Compiled(compiled)

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
