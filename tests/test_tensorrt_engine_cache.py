"""Where TensorRT engines live, what their cache key holds, and how a profile's limits reach the daemon.

All of it runs without a GPU: the cache and plan plumbing is files and JSON, and the CUDA errors are the
ones cuda-python really returns on a machine without an NVIDIA driver.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tensorrt_bundle import tensorrt_bundle

from edge_vad.errors import EdgeVadError
from edge_vad.runtime.backends import cuda_runtime as cudart
from edge_vad.runtime.backends.tensorrt_engine import (
    PLAN_FILE, BuildPlan, cached_engine, engine_cache, engine_key, gpu_available, key_digest,
)
from edge_vad.runtime.bundle.loader import load_bundle

ORIN = cudart.Gpu(0, "Orin", (8, 7), 7620)


def test_one_cache_location_for_build_engine_and_the_daemon(tmp_path, monkeypatch):
    service = tmp_path / "var-cache-edge-vad"
    assert engine_cache("/x/engines", env={"EDGE_VAD_CACHE": "/y"}, service=service) == (Path("/x/engines"), "--cache-dir")
    assert engine_cache(env={"EDGE_VAD_CACHE": "/y"}, service=service)[0].as_posix() == "/y/tensorrt"
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    path, why = engine_cache(env={}, service=service)
    assert path == tmp_path / "home/.cache/edge-vad/tensorrt" and "default" in why
    # Where the service is installed, a hand-run build-engine fills the cache the service reads.
    service.mkdir()
    assert engine_cache(env={}, service=service) == (service / "tensorrt", f"the service's cache ({service} exists)")


def test_engine_key_holds_workspace_and_gpu_name():
    plan = BuildPlan(onnx="model.onnx", onnx_sha256="ab" * 32, precision="fp16", inputs={"frame": [1, 8, 8]})
    key = engine_key(plan, "10.3.0", ORIN)
    assert key["workspace_mb"] == 1024 and key["gpu"] == "Orin" and key["compute_capability"] == "8.7"
    bigger = engine_key(plan.with_profile(workspace_mb=4096), "10.3.0", ORIN)
    other_gpu = engine_key(plan, "10.3.0", cudart.Gpu(0, "NVIDIA GeForce RTX 4090", (8, 9), 24000))
    assert len({key_digest(key), key_digest(bigger), key_digest(other_gpu)}) == 3


def test_a_mismatched_cached_engine_is_named_with_what_changed(tmp_path):
    plan = BuildPlan(onnx="model.onnx", onnx_sha256="cd" * 32, precision="fp16", inputs={"frame": [1, 8, 8]})
    assert cached_engine(tmp_path, engine_key(plan, "10.3.0", ORIN)) == (None, "no engine of this graph in the cache yet")
    # What build_engine leaves: the engine and its key beside it (here built by an earlier TensorRT).
    old = engine_key(plan, "8.6.2", ORIN)
    (tmp_path / f"{key_digest(old)}.engine").write_bytes(b"engine")
    (tmp_path / f"{key_digest(old)}.json").write_text(json.dumps(old))
    now = engine_key(plan, "10.3.0", ORIN)
    path, why = cached_engine(tmp_path, now)
    assert path is None and "tensorrt '8.6.2' (now '10.3.0')" in why and f"{key_digest(old)}.engine" in why
    assert cached_engine(tmp_path, old) == (tmp_path / f"{key_digest(old)}.engine", "")
    # An engine file whose key file says something else is not trusted.
    (tmp_path / f"{key_digest(now)}.engine").write_bytes(b"engine")
    (tmp_path / f"{key_digest(now)}.json").write_text(json.dumps(old))
    assert cached_engine(tmp_path, now)[0] is None


def test_build_engine_writes_the_profile_into_the_bundles_plan(tmp_path, monkeypatch):
    from cli import app

    root, plan = tensorrt_bundle(tmp_path)
    monkeypatch.setenv("EDGE_VAD_CACHE", str(tmp_path / "cache"))
    res = CliRunner().invoke(app, ["build-engine", str(root), "--profile", "jetson-agx-orin"])
    assert f"engine cache: {tmp_path / 'cache' / 'tensorrt'} ($EDGE_VAD_CACHE)" in res.output
    stored = BuildPlan.load(root / PLAN_FILE)
    # DLA core 0, its static batch of one camera, the profile's workspace: what the daemon now builds and finds.
    assert (stored.dla_core, stored.batch["max"], stored.workspace_mb, stored.profile) == (0, 1, 4096, "jetson-agx-orin")
    assert "written into" in res.output
    load_bundle(root)  # the manifest's checksum follows the plan
    if not gpu_available()[0]:
        assert isinstance(res.exception, EdgeVadError) and ("tensorrt" in str(res.exception))
    # The same profile again changes nothing.
    res = CliRunner().invoke(app, ["build-engine", str(root), "--profile", "jetson-agx-orin"])
    assert "written into" not in res.output and BuildPlan.load(root / PLAN_FILE) == stored
    # A GPU-only profile takes the DLA core out again.
    CliRunner().invoke(app, ["build-engine", str(root), "--profile", "jetson-orin-nano"])
    nano = BuildPlan.load(root / PLAN_FILE)
    assert (nano.dla_core, nano.batch["max"], nano.workspace_mb, nano.profile) == (None, 4, 1024, "jetson-orin-nano")


def test_build_engine_refuses_a_read_only_bundle_with_the_fix(tmp_path, monkeypatch):
    import os

    from edge_vad.runtime.backends.tensorrt_engine import store_plan
    from edge_vad.profiles import load_profile

    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    root, plan = tensorrt_bundle(tmp_path)
    root.chmod(0o555)
    try:
        with pytest.raises(EdgeVadError, match="cannot write the profile's limits.*sudo"):
            store_plan(root, PLAN_FILE, plan.for_profile(load_profile("jetson-agx-orin")))
    finally:
        root.chmod(0o755)


def test_cuda_without_a_driver_is_one_clear_error():
    pytest.importorskip("cuda.bindings.runtime", reason="cuda-python not installed (pip install 'edge-vad[tensorrt]')")
    ok, why = gpu_available()
    try:
        gpu = cudart.gpu(0)
    except cudart.CudaError as exc:
        assert "looking for CUDA devices" in str(exc) and exc.code.startswith("cudaError")
        if exc.code == "cudaErrorInsufficientDriver":
            assert "no usable NVIDIA driver" in str(exc)
        assert not ok
    else:
        assert gpu.name and gpu.compute_capability[0] >= 5


@pytest.mark.parametrize("device, index", [(None, 0), ("cuda:0", 0), ("cuda:1", 1), (2, 2), ("", 0)])
def test_cuda_device_names(device, index):
    assert cudart.device_index(device) == index


def test_a_bad_cuda_device_name_is_refused():
    with pytest.raises(EdgeVadError, match="expected cuda:N"):
        cudart.device_index("gpu0")


def test_files_root_writes_into_the_services_cache_belong_to_the_service_user(tmp_path):
    import os

    from edge_vad.runtime.backends.tensorrt_engine import _cache_owner, _write

    if os.geteuid() != 0:
        pytest.skip("only root writes files for another user")
    service = tmp_path / "var-cache-edge-vad"
    service.mkdir()
    os.chown(service, 4242, 4243)  # what systemd's CacheDirectory= leaves: owned by the service user
    owner = _cache_owner(service / "tensorrt")
    assert owner == (4242, 4243)
    (service / "tensorrt").mkdir()
    _write(service / "tensorrt" / "x.engine", b"engine", owner)
    st = (service / "tensorrt" / "x.engine").stat()
    assert (st.st_uid, st.st_gid) == (4242, 4243)
    assert _cache_owner(tmp_path / "root-owned") is None  # a cache root owns stays root's
