"""edge-vad's TensorRT code against the real API of each TensorRT release it supports (and the one it refuses).

No GPU and no TensorRT libraries are needed: ``tests/trt_bindings.py prepare`` fetches the real bindings
modules of TensorRT 8.6, 10.3, 10.13 and 11.4 and stub libraries they load with. Every attribute the
backend and the engine builder use — ``trt.X.Y``, and methods and properties of the builder, network,
parser, config, optimization profile, runtime, engine and execution context — is read from the source
and looked up in each release, with the keyword arguments its calls pass.
"""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

import pytest

from helpers import REPO

sys.path.insert(0, str(Path(__file__).parent))
import trt_bindings  # noqa: E402

from edge_vad.errors import EdgeVadError  # noqa: E402
from edge_vad.runtime.backends.tensorrt_engine import check_tensorrt_version, tensorrt_version_problem  # noqa: E402

SOURCES = [REPO / "edge_vad/runtime/backends/tensorrt_engine.py", REPO / "edge_vad/runtime/backends/tensorrt.py"]
# The TensorRT class behind each name the code gives its objects.
OBJECTS = {"builder": "Builder", "network": "INetworkDefinition", "parser": "OnnxParser", "config": "IBuilderConfig",
           "profile": "IOptimizationProfile", "runtime": "Runtime", "engine": "ICudaEngine",
           "self.engine": "ICudaEngine", "self.context": "IExecutionContext", "logger": "Logger"}
SUPPORTED = ["8.6.1", "10.3.0", "10.13.3.9"]
PREPARE = "run 'python tests/trt_bindings.py prepare' once (downloads the TensorRT bindings wheels)"


def _name(node) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        return f"{node.value.id}.{node.attr}"
    return None


def used_api() -> list[dict]:
    """[{owner, attr, kwargs}]: owner is '' (the module), an enum/class under trt, or a class from OBJECTS."""
    uses = {}
    for path in SOURCES:
        tree = ast.parse(path.read_text())
        calls = {id(n.func): [k.arg for k in n.keywords if k.arg] for n in ast.walk(tree) if isinstance(n, ast.Call)}
        for node in ast.walk(tree):
            if not isinstance(node, ast.Attribute):
                continue
            owner = None
            if isinstance(node.value, ast.Name) and node.value.id == "trt":
                owner = ""
            elif isinstance(node.value, ast.Attribute) and _name(node.value.value) == "trt":
                owner = node.value.attr
            elif _name(node.value) in OBJECTS:
                owner = OBJECTS[_name(node.value)]
            if owner is not None:
                use = uses.setdefault((owner, node.attr), {"owner": owner, "attr": node.attr, "kwargs": []})
                use["kwargs"] = sorted(set(use["kwargs"]) | set(calls.get(id(node), [])))
    return list(uses.values())


LOOKUP = """
import json
import tensorrt as trt
missing = []
for use in json.loads({uses!r}):
    owner = trt if not use["owner"] else getattr(trt, use["owner"], None)
    where = "trt." + (use["owner"] + "." if use["owner"] else "") + use["attr"]
    if owner is None or not hasattr(owner, use["attr"]):
        missing.append(where)
        continue
    doc = getattr(getattr(owner, use["attr"]), "__doc__", "") or ""
    missing += [f"{{where}}({{k}}=)" for k in use["kwargs"] if f"{{k}}:" not in doc]
print(json.dumps({{"version": trt.__version__, "missing": missing}}))
"""


def _lookup(version: str) -> dict:
    proc = trt_bindings.run(version, LOOKUP.format(uses=json.dumps(used_api())))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _need(version: str) -> None:
    if version not in trt_bindings.prepared():
        pytest.skip(f"TensorRT {version} bindings not prepared here: {PREPARE}")


@pytest.mark.parametrize("version, problem", [
    ("8.4.3.1", "older than 8.5"), ("8.5.2.2", None), ("8.6.2", None), ("10.3.0", None), ("10.13.3.9.post1", None),
    ("10.16.1.11", None), ("11.0.0.114", "removed the FP16/INT8 builder flags"), ("11.4.0.106", "removed"),
    ("12.0", "removed"), ("", "cannot read"), ("trt-dev", "cannot read"),
])
def test_tensorrt_version_gate(version, problem):
    found = tensorrt_version_problem(version)
    assert (found is None) == (problem is None) and (problem is None or problem in found), found
    if problem:
        with pytest.raises(EdgeVadError, match=r"supports TensorRT 8\.5 to 10\.x.*tensorrt>=8\.5,<11"):
            check_tensorrt_version(version)
    else:
        check_tensorrt_version(version)


def test_the_source_scan_sees_the_calls_that_matter():
    # The lookup below is only as good as this scan: these are the calls the first real run depends on.
    found = {(u["owner"], u["attr"]) for u in used_api()}
    for use in [("", "init_libnvinfer_plugins"), ("BuilderFlag", "FP16"), ("BuilderFlag", "INT8"),
                ("", "IInt8EntropyCalibrator2"), ("IBuilderConfig", "set_memory_pool_limit"),
                ("IExecutionContext", "execute_async_v3"), ("ICudaEngine", "get_tensor_profile_shape"),
                ("Runtime", "deserialize_cuda_engine"), ("IBuilderConfig", "set_timing_cache")]:
        assert use in found, use
    assert any(u["attr"] == "set_timing_cache" and u["kwargs"] == ["ignore_mismatch"] for u in used_api())


@pytest.mark.parametrize("version", SUPPORTED)
def test_everything_the_code_uses_exists_in_supported_tensorrt(version):
    _need(version)
    result = _lookup(version)
    assert result["version"] == version
    assert result["missing"] == [], f"TensorRT {version} lacks {result['missing']}"


def test_tensorrt_11_lacks_what_the_build_uses_so_it_is_refused():
    _need("11.4.0.106")
    missing = _lookup("11.4.0.106")["missing"]
    for gone in ("trt.BuilderFlag.FP16", "trt.BuilderFlag.INT8", "trt.IInt8EntropyCalibrator2"):
        assert gone in missing
    proc = trt_bindings.run("11.4.0.106", "from edge_vad.runtime.backends.tensorrt_engine import tensorrt; tensorrt()")
    assert proc.returncode != 0 and "EdgeVadError: TensorRT 11.4.0.106 removed" in proc.stderr


@pytest.mark.parametrize("version", SUPPORTED)
def test_builder_failure_is_one_clear_error(version):
    # Without a usable CUDA, TensorRT's Builder factory returns nullptr (pybind: TypeError); the build says
    # what failed, for which engine, and the fix.
    _need(version)
    proc = trt_bindings.run(version, """
from edge_vad.errors import EdgeVadError
from edge_vad.runtime.backends.tensorrt_engine import create_builder, tensorrt
trt = tensorrt()
try:
    create_builder(trt, trt.Logger(trt.Logger.WARNING), "building TensorRT engine e.engine (fp16, profile jetson-orin-nano)")
except EdgeVadError as exc:
    print(exc)
""")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "e.engine" in out and "jetson-orin-nano" in out and "cannot create a builder" in out
    assert "factory function returned nullptr" in out and "Fix:" in out


def test_the_tensorrt_extra_installs_the_range_the_gate_accepts_on_x86_only():
    import tomllib

    from packaging.requirements import Requirement

    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    req = next(Requirement(r) for r in extras["tensorrt"] if Requirement(r).name == "tensorrt")
    for version in ("8.4.3.1", "8.5.3.1", "8.6.1", "10.3.0", "10.16.1.11", "11.0.0.114", "11.4.0.106"):
        assert req.specifier.contains(version) == (tensorrt_version_problem(version) is None), version
    # JetPack's TensorRT is the system one on aarch64: pip must not look for wheels that do not exist there.
    assert req.marker.evaluate({"platform_machine": "x86_64", "sys_platform": "linux"})
    assert not req.marker.evaluate({"platform_machine": "aarch64", "sys_platform": "linux"})
    assert any(Requirement(r).name == "cuda-python" for r in extras["tensorrt"])
    assert [Requirement(r).name for r in extras["cuda"]] == ["onnxruntime-gpu"]
