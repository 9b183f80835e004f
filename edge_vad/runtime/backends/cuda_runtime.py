"""The CUDA runtime calls the TensorRT backend makes (cuda-python), each failure an EdgeVadError.

cuda-python's runtime API works on each device's primary context, the one TensorRT and every other
runtime-API user in the process share: there is no context stack to push (pycuda's ``mem_alloc``
refused to allocate outside a pycuda-made context, which broke the INT8 calibrator during a build).
It ships wheels for x86-64 and aarch64 (Jetson) and loads the driver only when called, so it imports
on a machine without a GPU and says so in its error codes.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

import numpy as np

from edge_vad.errors import EdgeVadError, require

INSTALL_HINT = "pip install 'edge-vad[tensorrt]' (cuda-python)"


class CudaError(EdgeVadError):
    """A CUDA runtime call failed; the message names the call and CUDA's own error."""

    def __init__(self, what: str, code: str, text: str):
        self.code = code
        hint = (" (no usable NVIDIA driver: is this a machine with an NVIDIA GPU and its driver loaded? "
                "check with nvidia-smi, or tegrastats on Jetson)" if code in _NO_DRIVER else "")
        super().__init__(f"{what} failed: {code}, {text}{hint}")


_NO_DRIVER = {"cudaErrorInsufficientDriver", "cudaErrorNoDevice", "cudaErrorStubLibrary",
              "cudaErrorDevicesUnavailable", "cudaErrorInitializationError"}


def runtime():
    return require("cuda.bindings.runtime", "tensorrt", "Running a TensorRT engine", package="cuda-python")


def check(result, what: str):
    """cuda-python returns ``(error, *values)``: the values, or CudaError naming ``what``."""
    rt = runtime()
    err, *values = result if isinstance(result, tuple) else (result,)
    if err != rt.cudaError_t.cudaSuccess:
        name = rt.cudaGetErrorName(err)[1].decode()
        text = rt.cudaGetErrorString(err)[1].decode()
        raise CudaError(what, name, text)
    if not values:
        return None
    return values[0] if len(values) == 1 else tuple(values)


@dataclass(frozen=True)
class Gpu:
    index: int
    name: str
    compute_capability: tuple[int, int]
    memory_mb: int


def device_index(device: str | int | None) -> int:
    """``cuda:1`` / ``1`` / None (→ 0)."""
    if device is None or device == "":
        return 0
    text = str(device)
    tail = text.split(":", 1)[1] if text.startswith("cuda:") else text
    if not tail.isdigit():
        raise EdgeVadError(f"device {device!r}: expected cuda:N (e.g. cuda:0)")
    return int(tail)


def gpu(index: int = 0) -> Gpu:
    rt = runtime()
    count = check(rt.cudaGetDeviceCount(), "looking for CUDA devices (cudaGetDeviceCount)")
    if index >= count:
        raise EdgeVadError(f"CUDA device {index} requested but this machine has {count}")
    props = check(rt.cudaGetDeviceProperties(index), f"reading CUDA device {index}'s properties")
    name = props.name.decode(errors="replace").rstrip("\x00") if isinstance(props.name, bytes) else str(props.name)
    return Gpu(index, name, (int(props.major), int(props.minor)), int(props.totalGlobalMem) >> 20)


def use_device(index: int) -> None:
    """The runtime API's current device is per thread: set it in every thread that calls CUDA."""
    check(runtime().cudaSetDevice(index), f"selecting CUDA device {index}")


class DeviceBuffer:
    def __init__(self, nbytes: int):
        self.nbytes = int(nbytes)
        self.ptr = int(check(runtime().cudaMalloc(max(self.nbytes, 1)), f"allocating {self.nbytes} bytes on the GPU"))

    def free(self) -> None:
        if self.ptr:
            runtime().cudaFree(self.ptr)
            self.ptr = 0


class PinnedArray:
    """A page-locked host array (asynchronous copies need one), viewed as numpy."""

    def __init__(self, shape: tuple[int, ...], dtype):
        dtype = np.dtype(dtype)
        self.nbytes = int(np.prod(shape)) * dtype.itemsize
        self.ptr = int(check(runtime().cudaMallocHost(max(self.nbytes, 1)), f"allocating {self.nbytes} bytes of pinned memory"))
        raw = (ctypes.c_char * max(self.nbytes, 1)).from_address(self.ptr)
        self.array = np.frombuffer(raw, dtype=dtype, count=int(np.prod(shape))).reshape(shape)


class Stream:
    def __init__(self):
        self.handle = check(runtime().cudaStreamCreate(), "creating a CUDA stream")

    def __int__(self) -> int:
        return int(self.handle)

    def to_device(self, dst: DeviceBuffer, src: np.ndarray) -> None:
        rt = runtime()
        check(rt.cudaMemcpyAsync(dst.ptr, src.ctypes.data, src.nbytes, rt.cudaMemcpyKind.cudaMemcpyHostToDevice,
                                 self.handle), "copying inputs to the GPU")

    def to_host(self, dst: np.ndarray, src: DeviceBuffer) -> None:
        rt = runtime()
        check(rt.cudaMemcpyAsync(dst.ctypes.data, src.ptr, dst.nbytes, rt.cudaMemcpyKind.cudaMemcpyDeviceToHost,
                                 self.handle), "copying outputs from the GPU")

    def synchronize(self) -> None:
        check(runtime().cudaStreamSynchronize(self.handle), "waiting for the GPU (cudaStreamSynchronize)")


def copy_to_device(dst: DeviceBuffer, src: np.ndarray) -> None:
    """Synchronous copy (the INT8 calibrator's, outside any stream)."""
    rt = runtime()
    src = np.ascontiguousarray(src)
    check(rt.cudaMemcpy(dst.ptr, src.ctypes.data, src.nbytes, rt.cudaMemcpyKind.cudaMemcpyHostToDevice),
          "copying calibration inputs to the GPU")
