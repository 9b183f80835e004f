"""TensorRT backend (tensorrt + pycuda): runs the engine built on this device from the bundle's plan."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_vad.errors import EdgeVadError
from edge_vad.runtime.backends.tensorrt_engine import PLAN_FILE, BuildPlan, _modules, find_engine


class TensorRtBackend:
    name = "tensorrt"

    def __init__(self, model_path: Path, build_plan: str | Path | None = None, cache_dir: Path | None = None,
                 build: bool = True, plan_overrides: dict | None = None, log=print, **_ignored):
        trt, cuda = _modules()
        root = Path(model_path).parent
        plan = BuildPlan.load(root / (build_plan or PLAN_FILE))
        if plan_overrides:
            plan = plan.with_profile(**plan_overrides)
        engine_file = find_engine(plan, cache_dir, build=build, bundle_root=root, log=log)
        # The primary context is shared with anything else on this GPU in the process.
        self._ctx = cuda.Device(0).retain_primary_context()
        self._ctx.push()
        try:
            runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
            self.engine = runtime.deserialize_cuda_engine(engine_file.read_bytes())
            if self.engine is None:
                raise EdgeVadError(f"{engine_file}: TensorRT cannot load this engine; delete it to rebuild")
            self.context = self.engine.create_execution_context()
            self.stream = cuda.Stream()
            names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
            self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
            self.outputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
            self.max_batch = plan.batch["max"]
            self.dtypes = {n: np.dtype(trt.nptype(self.engine.get_tensor_dtype(n))) for n in names}
            # Device and pinned host buffers sized for the largest batch of the profile.
            self.device, self.host = {}, {}
            shapes = dict(plan.inputs)
            for n in self.inputs:
                self.context.set_input_shape(n, (self.max_batch, *shapes[n]))
            for n in names:
                shape = tuple(self.context.get_tensor_shape(n))
                self.host[n] = cuda.pagelocked_empty(shape, self.dtypes[n])
                self.device[n] = cuda.mem_alloc(self.host[n].nbytes)
                self.context.set_tensor_address(n, int(self.device[n]))
        finally:
            self._ctx.pop()
        self._cuda = cuda

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        cuda = self._cuda
        batch = next(iter(inputs.values())).shape[0]
        if batch > self.max_batch:
            raise EdgeVadError(f"batch {batch} exceeds the engine's profile maximum {self.max_batch}; "
                               "rebuild with a profile of more cameras")
        self._ctx.push()
        try:
            for n in self.inputs:
                x = np.ascontiguousarray(inputs[n], dtype=self.dtypes[n])
                self.context.set_input_shape(n, x.shape)
                view = self.host[n].reshape(-1)[: x.size].reshape(x.shape)
                view[...] = x
                cuda.memcpy_htod_async(self.device[n], view, self.stream)
            if not self.context.execute_async_v3(self.stream.handle):
                raise EdgeVadError("TensorRT execution failed (see the TensorRT log)")
            out = {}
            for n in self.outputs:
                shape = tuple(self.context.get_tensor_shape(n))
                view = self.host[n].reshape(-1)[: int(np.prod(shape))].reshape(shape)
                cuda.memcpy_dtoh_async(view, self.device[n], self.stream)
                out[n] = view
            self.stream.synchronize()
            return {n: v.astype(np.float32, copy=True) for n, v in out.items()}
        finally:
            self._ctx.pop()
