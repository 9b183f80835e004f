"""TensorRT backend (tensorrt + cuda-python): runs the engine built on this device from the bundle's plan."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_vad.errors import EdgeVadError
from edge_vad.runtime.backends import cuda_runtime as cudart
from edge_vad.runtime.backends.batching import run_in_chunks
from edge_vad.runtime.backends.tensorrt_engine import PLAN_FILE, BuildPlan, build_engine, find_engine, tensorrt


class TensorRtBackend:
    name = "tensorrt"

    def __init__(self, model_path: Path, build_plan: str | Path | None = None, cache_dir: Path | None = None,
                 build: bool = True, device: str | None = None, log=print, **_ignored):
        trt = tensorrt()
        root = Path(model_path).parent
        plan = BuildPlan.load(root / (build_plan or PLAN_FILE))
        self.device_index = cudart.device_index(device)
        engine_file = find_engine(plan, cache_dir, build=build, bundle_root=root, log=log, device=self.device_index)
        logger = trt.Logger(trt.Logger.WARNING)
        # The ONNX parser registers TensorRT's plugins (hf2vad's RoiAlign becomes ROIAlign_TRT) only in the
        # process that builds; a process that only loads the cached engine has to register them itself.
        trt.init_libnvinfer_plugins(logger, "")
        runtime = trt.Runtime(logger)
        self.engine = runtime.deserialize_cuda_engine(engine_file.read_bytes())
        if self.engine is None and build:
            log(f"{engine_file}: TensorRT {trt.__version__} cannot load this cached engine (its log above says "
                "why); rebuilding it")
            engine_file.unlink()
            engine_file = build_engine(root, plan, cache_dir, log=log, device=self.device_index)
            self.engine = runtime.deserialize_cuda_engine(engine_file.read_bytes())
        self.what = f"TensorRT engine {engine_file} ({plan.describe()})"
        if self.engine is None:
            raise EdgeVadError(f"{self.what}: TensorRT cannot load it. Fix: delete it and run "
                               "'edge-vad build-engine BUNDLE' on this device")
        try:
            self._allocate(trt)
        except cudart.CudaError as exc:
            raise EdgeVadError(f"{self.what}: {exc}. Fix: free GPU memory (other processes: nvidia-smi) or "
                               "a profile with fewer max_cameras") from exc

    def _allocate(self, trt) -> None:
        engine = self.engine
        self.context = engine.create_execution_context()
        self.stream = cudart.Stream()
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        self.inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        # The engine's own optimization profile says how many cameras one call takes (min, opt, max).
        self.max_batch = int(engine.get_tensor_profile_shape(self.inputs[0], 0)[2][0])
        self.dtypes = {n: np.dtype(trt.nptype(engine.get_tensor_dtype(n))) for n in names}
        for n in self.inputs:
            self.context.set_input_shape(n, (self.max_batch, *tuple(engine.get_tensor_shape(n))[1:]))
        # Device and pinned host buffers sized for the largest batch of the profile.
        self.device, self.host = {}, {}
        for n in names:
            self.host[n] = cudart.PinnedArray(tuple(self.context.get_tensor_shape(n)), self.dtypes[n])
            self.device[n] = cudart.DeviceBuffer(self.host[n].nbytes)
            self.context.set_tensor_address(n, self.device[n].ptr)

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return run_in_chunks(self._run_batch, inputs, self.max_batch)

    def _run_batch(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            cudart.use_device(self.device_index)
            for n in self.inputs:
                x = np.ascontiguousarray(inputs[n], dtype=self.dtypes[n])
                self.context.set_input_shape(n, x.shape)
                view = self.host[n].array.reshape(-1)[: x.size].reshape(x.shape)
                view[...] = x
                self.stream.to_device(self.device[n], view)
            if not self.context.execute_async_v3(int(self.stream)):
                raise EdgeVadError(f"{self.what}: execution failed (the TensorRT log above says why)")
            out = {}
            for n in self.outputs:
                shape = tuple(self.context.get_tensor_shape(n))
                view = self.host[n].array.reshape(-1)[: int(np.prod(shape))].reshape(shape)
                self.stream.to_host(view, self.device[n])
                out[n] = view
            self.stream.synchronize()
        except cudart.CudaError as exc:
            raise EdgeVadError(f"{self.what}: {exc}. Fix: check the GPU (nvidia-smi / tegrastats); a GPU error "
                               "often needs the service restarted") from exc
        # Copies: the pinned buffers are reused by the next call (and by the next chunk of this one).
        return {n: v.astype(np.float32, copy=True) for n, v in out.items()}
