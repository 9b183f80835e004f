"""TensorRT on a real NVIDIA GPU: build, cache, load in another process, calibrate, split batches.

Runs wherever TensorRT, cuda-python and a CUDA GPU are present (``pip install 'edge-vad[tensorrt]'``);
skipped elsewhere with the reason. Bundles are the shipped ones with a build plan, as
``convert --target tensorrt`` writes them (the FP32 graph TensorRT builds FP16 and INT8 from).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from helpers import REPO
from tensorrt_bundle import tensorrt_bundle

from edge_vad.errors import EdgeVadError
from edge_vad.runtime.backends.tensorrt_engine import gpu_available

pytestmark = pytest.mark.gpu
_OK, _WHY = gpu_available()
if not _OK:
    pytestmark = [pytest.mark.gpu, pytest.mark.skip(reason=_WHY)]
MODELS = ["bisho", "hf2vad", "protomem", "stconvlstm", "stmae"]


def _feeds(model: str, n: int, cameras: int = 1) -> list[dict]:
    """What the daemon feeds the backend on the demo clip: n steps of frame + carried state (ORT CPU)."""
    from edge_vad.data.frames import read_frames
    from edge_vad.demo import DEMO_CLIP
    from edge_vad.runtime.bundle.loader import load_bundle
    from edge_vad.runtime.stream import CameraStream

    stream = CameraStream(load_bundle(REPO / f"edge_vad/assets/bundles/{model}-edge"), threads=1)
    feeds, run = [], stream.backend.run
    stream.backend.run = lambda inputs: (feeds.append({k: v.copy() for k, v in inputs.items()}), run(inputs))[1]
    for frame in read_frames(DEMO_CLIP, 0, n + stream.warmup):
        stream.step(frame)
    if cameras > 1:
        return [{k: np.concatenate([f[k] for f in feeds[i : i + cameras]]) for k in feeds[0]}
                for i in range(0, len(feeds) - cameras + 1, cameras)]
    return feeds[-n:]


def _ort(bundle, feed):
    from edge_vad.runtime.backends.onnxruntime import OnnxRuntimeBackend

    return OnnxRuntimeBackend(bundle / "model.onnx", threads=1).run(feed)


@pytest.mark.parametrize("model", MODELS)
def test_build_engine_then_a_new_process_loads_and_runs_it(model, tmp_path):
    # The build registers TensorRT's plugins (hf2vad's RoiAlign); the loading process must do it itself.
    bundle, _ = tensorrt_bundle(tmp_path, model, "fp16")
    env = {**os.environ, "EDGE_VAD_CACHE": str(tmp_path / "cache")}
    build = subprocess.run([sys.executable, "-c", "from cli import main; main()", "build-engine", str(bundle)],
                           cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
    assert build.returncode == 0, build.stderr + build.stdout
    assert f"engine cache: {tmp_path / 'cache' / 'tensorrt'} ($EDGE_VAD_CACHE)" in build.stdout
    feed = _feeds(model, 1)[0]
    np.savez(tmp_path / "feed.npz", **feed)
    run = subprocess.run([sys.executable, "-c", f"""
import numpy as np
from edge_vad.runtime.backends.tensorrt import TensorRtBackend
feed = dict(np.load({str(tmp_path / 'feed.npz')!r}))
out = TensorRtBackend({str(bundle / 'model.onnx')!r}, build=False).run(feed)
np.savez({str(tmp_path / 'out.npz')!r}, **out)
"""], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    got, want = dict(np.load(tmp_path / "out.npz")), _ort(bundle, feed)
    scale = float(np.abs(want["error_map"]).max()) or 1.0
    assert np.abs(got["error_map"] - want["error_map"]).max() / scale < 0.05
    assert np.corrcoef(got["error_map"].ravel(), want["error_map"].ravel())[0, 1] > 0.99


def test_int8_calibrator_mode_builds_and_tracks_fp32(tmp_path):
    feeds = _feeds("stconvlstm", 24)
    calibration = {k: np.concatenate([f[k] for f in feeds[:16]]) for k in feeds[0]}
    bundle, _ = tensorrt_bundle(tmp_path, "stconvlstm", "int8", calibration=calibration)
    from edge_vad.runtime.backends.tensorrt import TensorRtBackend

    lines = []
    backend = TensorRtBackend(bundle / "model.onnx", cache_dir=tmp_path / "engines", log=lines.append)
    assert any("building TensorRT" in line for line in lines)
    got = np.array([float(backend.run(f)["error"][0]) for f in feeds[16:]])
    want = np.array([float(_ort(bundle, f)["error"][0]) for f in feeds[16:]])
    assert np.all(np.isfinite(got)) and np.corrcoef(got, want)[0, 1] > 0.9
    assert list((tmp_path / "engines").glob("*.calib")), "the calibration cache is kept beside the engine"


def test_more_cameras_than_the_engine_takes_run_in_chunks(tmp_path):
    from edge_vad.runtime.backends.tensorrt import TensorRtBackend

    bundle, _ = tensorrt_bundle(tmp_path, "stconvlstm", "fp32", max_cameras=2)
    backend = TensorRtBackend(bundle / "model.onnx", cache_dir=tmp_path / "engines")
    assert backend.max_batch == 2
    feed = _feeds("stconvlstm", 5, cameras=5)[0]
    together = backend.run(feed)
    alone = [backend.run({k: v[i : i + 1] for k, v in feed.items()}) for i in range(5)]
    for name in together:
        assert together[name].shape[0] == 5
        np.testing.assert_allclose(together[name], np.concatenate([a[name] for a in alone]), rtol=1e-3, atol=1e-4)


def test_a_changed_workspace_rebuilds_and_says_why(tmp_path):
    from edge_vad.runtime.backends.tensorrt_engine import BuildPlan, find_engine

    bundle, plan = tensorrt_bundle(tmp_path, "stmae", "fp16")
    lines = []
    first = find_engine(plan, tmp_path / "engines", bundle_root=bundle, log=lines.append)
    assert find_engine(plan, tmp_path / "engines", build=False) == first
    bigger = BuildPlan(**{**json.loads(plan.to_json()), "workspace_mb": 2048})
    second = find_engine(bigger, tmp_path / "engines", bundle_root=bundle, log=lines.append)
    assert second != first and any("workspace_mb 1024 (now 2048)" in line for line in lines)


def test_a_dla_profile_on_a_gpu_without_dla_is_refused_with_the_fix(tmp_path):
    from edge_vad.runtime.backends.tensorrt_engine import find_engine

    bundle, plan = tensorrt_bundle(tmp_path, "stmae", "fp16")
    import tensorrt as trt

    if trt.Builder(trt.Logger(trt.Logger.ERROR)).num_DLA_cores > 0:
        pytest.skip("this device has DLA cores")
    with pytest.raises(EdgeVadError, match="DLA core 0 requested but this device has 0.*Fix"):
        find_engine(plan.with_profile(dla_core=0), tmp_path / "engines", bundle_root=bundle, log=lambda *a: None)
