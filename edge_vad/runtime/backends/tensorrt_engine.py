"""Build and cache TensorRT engines on the device (TensorRT Python API + cuda-python).

Engines are tied to the TensorRT version and the GPU they were built on, so a
bundle ships the ONNX graph and a build plan (``engine_plan.json``); the
engine is built here, on the device, and cached under a key of TensorRT
version, GPU, precision, shapes, workspace, DLA core and the graph's checksum.
A cached engine whose key no longer matches is rebuilt with the reason, or
refused with it when building is not allowed.

Supported: TensorRT 8.5 to 10.x. 8.5 brought ``set_input_shape`` /
``execute_async_v3``; 11 removed the FP16/INT8 builder flags and the INT8
calibrator (precision comes from the graph there), which this build uses.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edge_vad.errors import EdgeVadError, require
from edge_vad.runtime.backends import cuda_runtime as cudart
from edge_vad.runtime.backends.cache import SERVICE_CACHE, cache_root

PLAN_FILE = "engine_plan.json"
CALIB_FILE = "calib_inputs.npz"
SUPPORTED_TENSORRT = "8.5 to 10.x"
TENSORRT_INSTALL = ("x86-64: pip install 'edge-vad[tensorrt]' (tensorrt>=8.5,<11); "
                    "Jetson: JetPack 6.x's TensorRT (sudo apt install python3-libnvinfer, venv with --system-site-packages)")


# ----------------------------------------------------------------- version gate

def tensorrt_version_problem(version: str) -> str | None:
    """Why this TensorRT version cannot build or run edge-vad's engines; None when it can."""
    m = re.match(r"^(\d+)\.(\d+)", str(version).strip())
    if not m:
        return f"cannot read TensorRT's version {version!r}"
    major, minor = int(m.group(1)), int(m.group(2))
    if (major, minor) < (8, 5):
        return f"TensorRT {version} is older than 8.5 (set_input_shape/execute_async_v3 came in 8.5)"
    if major >= 11:
        return (f"TensorRT {version} removed the FP16/INT8 builder flags and the INT8 calibrator "
                "that edge-vad's engine build uses")
    return None


def check_tensorrt_version(version: str) -> None:
    problem = tensorrt_version_problem(version)
    if problem:
        raise EdgeVadError(f"{problem}; edge-vad supports TensorRT {SUPPORTED_TENSORRT}. Install one: {TENSORRT_INSTALL}")


def tensorrt():
    trt = require("tensorrt", "tensorrt", "Building or running a TensorRT engine")
    check_tensorrt_version(trt.__version__)
    return trt


# ----------------------------------------------------------------- the build plan

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
    profile: str | None = None  # the device profile whose limits these are (for messages)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def load(cls, path: Path) -> "BuildPlan":
        try:
            return cls(**json.loads(Path(path).read_text()))
        except (OSError, json.JSONDecodeError, TypeError) as exc:
            raise EdgeVadError(f"{path}: not a valid TensorRT build plan ({exc})") from exc

    def with_profile(self, max_cameras: int | None = None, workspace_mb: int | None = None,
                     dla_core: int | None = None, name: str | None = None) -> "BuildPlan":
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
        if name:
            d["profile"] = name
        return BuildPlan(**d)

    def for_profile(self, device_profile) -> "BuildPlan":
        """This plan with a device profile's camera count, workspace and DLA core (none: the GPU)."""
        p = device_profile
        gpu = BuildPlan(**{**asdict(self), "dla_core": None})
        return gpu.with_profile(max_cameras=p.max_cameras, workspace_mb=p.workspace_mb, dla_core=p.dla_core,
                                name=p.name)

    def describe(self) -> str:
        dla = f", DLA core {self.dla_core}" if self.dla_core is not None else ""
        return (f"{self.precision}, 1..{self.batch['max']} camera(s), workspace {self.workspace_mb} MB{dla}, "
                f"profile {self.profile or '(as converted)'}")


def store_plan(bundle_root: Path, plan_file: str, plan: BuildPlan) -> bool:
    """Write ``plan`` as the bundle's build plan (and its checksum into the manifest), so that every later
    ``run`` builds and finds the same engine. Returns whether anything changed."""
    from edge_vad.runtime.bundle.loader import sha256_file
    from edge_vad.runtime.bundle.manifest import MANIFEST

    root = Path(bundle_root)
    path, manifest_path = root / plan_file, root / MANIFEST
    if BuildPlan.load(path) == plan:
        return False
    manifest = json.loads(manifest_path.read_text())
    try:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(plan.to_json())
        manifest["files"][plan_file] = sha256_file(tmp)
        tmp_manifest = manifest_path.with_name(MANIFEST + ".tmp")
        tmp_manifest.write_text(json.dumps(manifest, indent=2))
        tmp.replace(path)
        tmp_manifest.replace(manifest_path)
    except OSError as exc:
        raise EdgeVadError(f"{path}: cannot write the profile's limits into the bundle's build plan ({exc}); "
                           "run build-engine as the bundle's owner (root for /opt/edge-vad/bundle: sudo)") from exc
    return True


# ----------------------------------------------------------------- the engine cache

def engine_cache(cache_dir: str | Path | None = None, env=None, service: Path = SERVICE_CACHE) -> tuple[Path, str]:
    """The engine folder and why it is that one (``--cache-dir``, else the cache root's ``tensorrt``)."""
    if cache_dir:
        return Path(cache_dir), "--cache-dir"
    root, why = cache_root(env, service)
    return root / "tensorrt", why


def engine_key(plan: BuildPlan, trt_version: str, gpu: cudart.Gpu) -> dict:
    return {
        "tensorrt": trt_version,
        "gpu": gpu.name,
        "compute_capability": f"{gpu.compute_capability[0]}.{gpu.compute_capability[1]}",
        "precision": plan.precision,
        "int8_mode": plan.int8_mode,
        "inputs": plan.inputs,
        "batch": plan.batch,
        "workspace_mb": plan.workspace_mb,
        "dla_core": plan.dla_core,
        "onnx_sha256": plan.onnx_sha256,
    }


def key_digest(key: dict) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def cached_engine(cache: Path, key: dict) -> tuple[Path | None, str]:
    """The cached engine for ``key``, or None and why none fits (what the engines of this graph were built for)."""
    path = Path(cache) / f"{key_digest(key)}.engine"
    meta = path.with_suffix(".json")
    if path.exists() and meta.exists():
        try:
            if json.loads(meta.read_text()) == key:
                return path, ""
        except json.JSONDecodeError:
            pass
        return None, f"{meta} does not describe this engine"
    others = []
    for other in sorted(Path(cache).glob("*.json")) if Path(cache).is_dir() else []:
        try:
            built = json.loads(other.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(built, dict) and built.get("onnx_sha256") == key["onnx_sha256"]:
            diff = [f"{k} {built.get(k)!r} (now {v!r})" for k, v in key.items() if built.get(k) != v]
            others.append(f"{other.with_suffix('.engine').name} was built for " + ", ".join(diff))
    if others:
        return None, "no cached engine fits this device and plan: " + "; ".join(others)
    return None, "no engine of this graph in the cache yet"


def _cache_owner(cache: Path) -> tuple[int, int] | None:
    """Who files written into ``cache`` should belong to: when root writes into a cache another user owns
    (a hand-run build-engine into the service's), that user, so the service can replace them later."""
    if os.geteuid() != 0:
        return None
    st = next(p.stat() for p in (cache, *cache.parents) if p.exists())
    return (st.st_uid, st.st_gid) if st.st_uid != 0 else None


def _write(path: Path, data: bytes, owner: tuple[int, int] | None) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    if owner:
        os.chown(path, *owner)


# ----------------------------------------------------------------- building

def gpu_available() -> tuple[bool, str]:
    """Whether TensorRT engines can be built and run here; the reason if not."""
    import importlib.util

    for mod, pkg in (("tensorrt", "tensorrt"), ("cuda.bindings", "cuda-python")):
        try:
            found = importlib.util.find_spec(mod) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            return False, f"{pkg} not installed ({TENSORRT_INSTALL})"
    try:
        tensorrt()
        cudart.gpu(0)
    except EdgeVadError as exc:
        return False, str(exc)
    return True, ""


class _EntropyCalibrator:
    """IInt8EntropyCalibrator2 fed with real stream samples through device buffers."""

    def __new__(cls, trt, samples: dict[str, np.ndarray], cache_file: Path):
        class Calibrator(trt.IInt8EntropyCalibrator2):
            def __init__(self):
                trt.IInt8EntropyCalibrator2.__init__(self)
                self.samples = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in samples.items()}
                self.count = len(next(iter(self.samples.values())))
                self.index = 0
                self.device = {k: cudart.DeviceBuffer(v[0:1].nbytes) for k, v in self.samples.items()}

            def get_batch_size(self):
                return 1

            def get_batch(self, names):
                if self.index >= self.count:
                    return None
                for n in names:
                    cudart.copy_to_device(self.device[n], self.samples[n][self.index : self.index + 1])
                self.index += 1
                return [self.device[n].ptr for n in names]

            def read_calibration_cache(self):
                return cache_file.read_bytes() if cache_file.exists() else None

            def write_calibration_cache(self, cache):
                cache_file.write_bytes(bytes(cache))

            def free(self):
                for buf in self.device.values():
                    buf.free()

        return Calibrator()


def create_builder(trt, logger, what: str):
    """``trt.Builder``; TensorRT answers a missing CUDA/driver with a pybind 'returned nullptr' error."""
    try:
        builder = trt.Builder(logger)
    except (TypeError, RuntimeError) as exc:
        builder, reason = None, str(exc)
    else:
        reason = ""
    if builder is None:
        raise EdgeVadError(f"{what}: TensorRT cannot create a builder ({reason or 'no builder returned'}). "
                           "Fix: TensorRT needs a working CUDA GPU and driver here (check nvidia-smi, or on Jetson "
                           "that JetPack's CUDA and TensorRT packages are installed)")
    return builder


def _network_flags(trt) -> int:
    # TensorRT 8.x needs explicit batch for ONNX; 10 made it the only mode (and deprecated the flag).
    if int(trt.__version__.split(".")[0]) < 10:
        return 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    return 0


def build_engine(bundle_root: Path, plan: BuildPlan, cache_dir: Path | None = None, log=print,
                 device: str | int | None = None) -> Path:
    """Build the engine of ``plan`` for this GPU; returns the cached engine file."""
    trt = tensorrt()
    index = cudart.device_index(device)
    cudart.use_device(index)
    gpu = cudart.gpu(index)
    cache, _ = engine_cache(cache_dir)
    owner = _cache_owner(cache)
    cache.mkdir(parents=True, exist_ok=True)
    if owner:
        os.chown(cache, *owner)
    key = engine_key(plan, trt.__version__, gpu)
    engine_path = cache / f"{key_digest(key)}.engine"
    what = f"building TensorRT engine {engine_path.name} from {Path(bundle_root) / plan.onnx} ({plan.describe()})"
    cc = gpu.compute_capability
    timing_file = cache / f"timing-trt{trt.__version__}-sm{cc[0]}{cc[1]}.cache"
    log(f"building TensorRT {trt.__version__} engine for {gpu.name} (sm{cc[0]}{cc[1]}; {plan.describe()}); "
        "this takes a while once")
    try:
        serialized, timing = _build(trt, Path(bundle_root), plan, timing_file, engine_path.with_suffix(".calib"), what)
    except cudart.CudaError as exc:
        raise EdgeVadError(f"{what}: {exc}. Fix: check the GPU (nvidia-smi, tegrastats on Jetson); free GPU memory "
                           f"or a smaller workspace_mb in the profile (now {plan.workspace_mb})") from exc
    _write(timing_file, timing, owner)
    _write(engine_path, serialized, owner)
    _write(engine_path.with_suffix(".json"), json.dumps(key, indent=2).encode(), owner)
    log(f"engine cached at {engine_path}")
    return engine_path


def _build(trt, bundle_root: Path, plan: BuildPlan, timing_file: Path, calib_cache: Path, what: str) -> tuple[bytes, bytes]:
    """The TensorRT build itself: (serialized engine, timing cache)."""
    logger = trt.Logger(trt.Logger.WARNING)
    builder = create_builder(trt, logger, what)
    network = builder.create_network(_network_flags(trt))
    parser = trt.OnnxParser(network, logger)
    onnx_path = bundle_root / plan.onnx
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EdgeVadError(f"{what}: TensorRT {trt.__version__} cannot import the graph: {errors}. Fix: convert "
                           "for --target cuda (ONNX Runtime) on this device, or use a TensorRT that supports these operators")

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, plan.workspace_mb << 20)
    profile = builder.create_optimization_profile()
    b = plan.batch
    for name, shape in plan.inputs.items():
        profile.set_shape(name, (b["min"], *shape), (b["opt"], *shape), (b["max"], *shape))
    config.add_optimization_profile(profile)
    calibrator = None
    if plan.precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    elif plan.precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)
        if plan.int8_mode == "calibrator":
            if not plan.calibration:
                raise EdgeVadError(f"{PLAN_FILE}: int8_mode 'calibrator' needs a 'calibration' file")
            with np.load(bundle_root / plan.calibration, allow_pickle=False) as data:
                samples = {k: data[k] for k in data.files}
            calibrator = _EntropyCalibrator(trt, samples, calib_cache)
            config.int8_calibrator = calibrator
            config.set_calibration_profile(profile)
            # Layers the calibrator cannot cover fall back to FP16 rather than FP32.
            config.set_flag(trt.BuilderFlag.FP16)
    if plan.dla_core is not None:
        if builder.num_DLA_cores <= plan.dla_core:
            raise EdgeVadError(f"{what}: DLA core {plan.dla_core} requested but this device has "
                               f"{builder.num_DLA_cores}. Fix: a profile without dla_core (GPU only) for this device")
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = plan.dla_core
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
    timing = config.create_timing_cache(timing_file.read_bytes() if timing_file.exists() else b"")
    config.set_timing_cache(timing, ignore_mismatch=False)
    try:
        serialized = builder.build_serialized_network(network, config)
    finally:
        if calibrator is not None:
            calibrator.free()
    if serialized is None:
        raise EdgeVadError(f"{what}: TensorRT built no engine (its log above says why). Fix: a larger workspace_mb "
                           f"in the profile (now {plan.workspace_mb}), or another precision than {plan.precision}")
    return bytes(serialized), bytes(config.get_timing_cache().serialize())


def find_engine(plan: BuildPlan, cache_dir: Path | None = None, build: bool = True, bundle_root: Path | None = None,
                log=print, device: str | int | None = None) -> Path:
    """The cached engine matching this device and plan; built when missing (if ``build``), else refused."""
    trt = tensorrt()
    index = cudart.device_index(device)
    cudart.use_device(index)
    cache, _ = engine_cache(cache_dir)
    key = engine_key(plan, trt.__version__, cudart.gpu(index))
    path, why = cached_engine(cache, key)
    if path is not None:
        return path
    if not build:
        raise EdgeVadError(
            f"no TensorRT engine in {cache} for this device (TensorRT {key['tensorrt']}, {key['gpu']}, "
            f"{plan.describe()}): {why}. Fix: run 'edge-vad build-engine BUNDLE' here first"
        )
    log(f"{why}; building")
    return build_engine(bundle_root, plan, cache, log=log, device=index)
