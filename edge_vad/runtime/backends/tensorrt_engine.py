"""Build and cache TensorRT engines on the device (TensorRT Python API + pycuda).

Engines are tied to the TensorRT version and the GPU they were built on, so a
bundle ships the ONNX graph and a build plan (``engine_plan.json``); the
engine is built here, on the device, and cached under a key of TensorRT
version, GPU compute capability, precision, shapes and the graph's checksum.
A cached engine whose key no longer matches is rebuilt, or refused with the
reason when building is not allowed.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edge_vad.errors import EdgeVadError, require

PLAN_FILE = "engine_plan.json"
CALIB_FILE = "calib_inputs.npz"
DEFAULT_CACHE = Path(os.environ.get("EDGE_VAD_CACHE", Path.home() / ".cache" / "edge-vad")) / "tensorrt"


@dataclass
class BuildPlan:
    onnx: str  # graph file in the bundle (QDQ graph for explicit INT8)
    onnx_sha256: str
    precision: str  # fp32 | fp16 | int8
    inputs: dict[str, list[int]]  # per-camera shape of every input, without batch
    int8_mode: str | None = None  # "qdq" (explicit, from the graph) or "calibrator" (entropy, implicit)
    calibration: str | None = None  # CALIB_FILE when int8_mode == "calibrator"
    batch: dict[str, int] = field(default_factory=lambda: {"min": 1, "opt": 1, "max": 4})
    workspace_mb: int = 1024
    dla_core: int | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def load(cls, path: Path) -> "BuildPlan":
        try:
            return cls(**json.loads(Path(path).read_text()))
        except (OSError, json.JSONDecodeError, TypeError) as exc:
            raise EdgeVadError(f"{path}: not a valid TensorRT build plan ({exc})") from exc

    def with_profile(self, max_cameras: int | None = None, workspace_mb: int | None = None,
                     dla_core: int | None = None) -> "BuildPlan":
        d = asdict(self)
        if max_cameras:
            d["batch"] = {"min": 1, "opt": 1, "max": int(max_cameras)}
        if workspace_mb:
            d["workspace_mb"] = int(workspace_mb)
        if dla_core is not None:
            d["dla_core"] = int(dla_core)
        if d["dla_core"] is not None:
            # DLA runs static shapes only: one camera per call.
            d["batch"] = {"min": 1, "opt": 1, "max": 1}
        return BuildPlan(**d)


def gpu_available() -> tuple[bool, str]:
    for mod, pkg in (("tensorrt", "tensorrt"), ("pycuda", "pycuda")):
        if importlib.util.find_spec(mod) is None:
            return False, f"{pkg} not installed (pip install 'edge-vad[tensorrt]')"
    try:
        import pycuda.driver as cuda

        cuda.init()
        if cuda.Device.count() == 0:
            return False, "no CUDA device"
    except Exception as exc:  # pycuda raises its own LogicError/RuntimeError without a driver
        return False, f"CUDA unavailable ({exc})"
    return True, ""


def _modules():
    trt = require("tensorrt", "tensorrt", "Building or running a TensorRT engine")
    require("pycuda", "tensorrt", "Running a TensorRT engine")
    import pycuda.driver as cuda

    cuda.init()
    return trt, cuda


def engine_key(plan: BuildPlan, trt_version: str, compute_capability: tuple[int, int]) -> dict:
    return {
        "tensorrt": trt_version,
        "compute_capability": f"{compute_capability[0]}.{compute_capability[1]}",
        "precision": plan.precision,
        "int8_mode": plan.int8_mode,
        "inputs": plan.inputs,
        "batch": plan.batch,
        "dla_core": plan.dla_core,
        "onnx_sha256": plan.onnx_sha256,
    }


def key_digest(key: dict) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


class _EntropyCalibrator:
    """IInt8EntropyCalibrator2 fed with real stream samples through pycuda buffers."""

    def __new__(cls, trt, cuda, samples: dict[str, np.ndarray], cache_file: Path):
        class Calibrator(trt.IInt8EntropyCalibrator2):
            def __init__(self):
                trt.IInt8EntropyCalibrator2.__init__(self)
                self.samples = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in samples.items()}
                self.count = len(next(iter(self.samples.values())))
                self.index = 0
                self.device = {k: cuda.mem_alloc(v[0:1].nbytes) for k, v in self.samples.items()}

            def get_batch_size(self):
                return 1

            def get_batch(self, names):
                if self.index >= self.count:
                    return None
                for n in names:
                    cuda.memcpy_htod(self.device[n], self.samples[n][self.index : self.index + 1])
                self.index += 1
                return [int(self.device[n]) for n in names]

            def read_calibration_cache(self):
                return cache_file.read_bytes() if cache_file.exists() else None

            def write_calibration_cache(self, cache):
                cache_file.write_bytes(bytes(cache))

        return Calibrator()


def build_engine(bundle_root: Path, plan: BuildPlan, cache_dir: Path | None = None, log=print) -> Path:
    """Build the engine of ``plan`` for this GPU; returns the cached engine file."""
    trt, cuda = _modules()
    cache = Path(cache_dir) if cache_dir else DEFAULT_CACHE
    cache.mkdir(parents=True, exist_ok=True)
    cc = cuda.Device(0).compute_capability()
    key = engine_key(plan, trt.__version__, cc)
    digest = key_digest(key)
    engine_path = cache / f"{digest}.engine"

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if int(trt.__version__.split(".")[0]) < 10:
        # TensorRT 8.x needs explicit batch for ONNX; 10 made it the only mode.
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    onnx_path = Path(bundle_root) / plan.onnx
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EdgeVadError(f"{onnx_path}: TensorRT cannot parse the graph: {errors}")

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, plan.workspace_mb << 20)
    profile = builder.create_optimization_profile()
    b = plan.batch
    for name, shape in plan.inputs.items():
        profile.set_shape(name, (b["min"], *shape), (b["opt"], *shape), (b["max"], *shape))
    config.add_optimization_profile(profile)
    if plan.precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    elif plan.precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)
        if plan.int8_mode == "calibrator":
            if not plan.calibration:
                raise EdgeVadError(f"{PLAN_FILE}: int8_mode 'calibrator' needs a 'calibration' file")
            with np.load(Path(bundle_root) / plan.calibration, allow_pickle=False) as data:
                samples = {k: data[k] for k in data.files}
            config.int8_calibrator = _EntropyCalibrator(trt, cuda, samples, cache / f"{digest}.calib")
            config.set_calibration_profile(profile)
            # Layers the calibrator cannot cover fall back to FP16 rather than FP32.
            config.set_flag(trt.BuilderFlag.FP16)
    if plan.dla_core is not None:
        if builder.num_DLA_cores <= plan.dla_core:
            raise EdgeVadError(f"DLA core {plan.dla_core} requested but this device has {builder.num_DLA_cores}")
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = plan.dla_core
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
    timing_file = cache / f"timing-trt{trt.__version__}-sm{cc[0]}{cc[1]}.cache"
    timing = config.create_timing_cache(timing_file.read_bytes() if timing_file.exists() else b"")
    config.set_timing_cache(timing, ignore_mismatch=False)

    log(f"building TensorRT {trt.__version__} engine ({plan.precision}, sm{cc[0]}{cc[1]}"
        f"{f', DLA {plan.dla_core}' if plan.dla_core is not None else ''}); this takes a while once")
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EdgeVadError(f"{onnx_path}: TensorRT failed to build an engine (see the TensorRT log above)")
    timing_file.write_bytes(bytes(config.get_timing_cache().serialize()))
    tmp = engine_path.with_suffix(".tmp")
    tmp.write_bytes(bytes(serialized))
    tmp.replace(engine_path)
    engine_path.with_suffix(".json").write_text(json.dumps(key, indent=2))
    log(f"engine cached at {engine_path}")
    return engine_path


def find_engine(plan: BuildPlan, cache_dir: Path | None = None, build: bool = True, bundle_root: Path | None = None,
                log=print) -> Path:
    """The cached engine matching this device and plan; built when missing (if ``build``), else refused."""
    trt, cuda = _modules()
    cache = Path(cache_dir) if cache_dir else DEFAULT_CACHE
    key = engine_key(plan, trt.__version__, cuda.Device(0).compute_capability())
    path = cache / f"{key_digest(key)}.engine"
    if path.exists():
        meta = json.loads(path.with_suffix(".json").read_text()) if path.with_suffix(".json").exists() else None
        if meta == key:
            return path
        log(f"{path}: cached engine was built for {meta}, not {key}; rebuilding")
    if not build:
        raise EdgeVadError(
            f"no TensorRT engine for this device (TensorRT {key['tensorrt']}, compute capability "
            f"{key['compute_capability']}, {plan.precision}); run 'edge-vad build-engine BUNDLE' here first"
        )
    return build_engine(bundle_root, plan, cache, log=log)
