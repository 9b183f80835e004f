"""ONNX Runtime's GPU providers: what was asked is what runs, or one clear error (never CPU numbers called "cuda").

ONNX Runtime falls back to CPU with a warning at most when a provider is missing or cannot start. On a
machine with the CPU build, asking for CUDA gives exactly that fallback, a real mismatch; on a GPU machine
with onnxruntime-gpu the same tests check the providers really run.
"""

from __future__ import annotations

import json
import shutil

import onnxruntime as ort
import pytest

from helpers import REPO

from edge_vad.targets import TARGETS
from edge_vad.errors import EdgeVadError
from edge_vad.runtime.backends.onnxruntime import OnnxRuntimeBackend, provider_options, why_not_running
from edge_vad.runtime.bundle.loader import load_bundle
from edge_vad.runtime.bundle.manifest import MANIFEST

MODEL = REPO / "edge_vad/assets/bundles/stmae-edge/model.onnx"


def _runs_here(target: str) -> bool:
    return TARGETS[target].runnable_here()[0]


@pytest.mark.parametrize("target", ["cuda", "cuda-trt"])
def test_asked_providers_run_or_the_session_is_refused(target):
    providers = list(TARGETS[target].providers)
    if _runs_here(target):
        backend = OnnxRuntimeBackend(MODEL, providers=providers, device="cuda:0", precision="fp16")
        assert backend.providers[: len(providers) - 1] == providers[:-1]
        return
    with pytest.raises(EdgeVadError) as err:
        OnnxRuntimeBackend(MODEL, providers=providers, device="cuda:0", precision="fp16")
    msg = str(err.value)
    assert f"asked ONNX Runtime for {', '.join(providers)}" in msg and "but the session runs on" in msg
    assert "CPUExecutionProvider" in msg.split("runs on")[1] and "Fix:" in msg


def test_the_reason_names_the_build_that_is_installed():
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this ONNX Runtime has the CUDA provider built in")
    reason = why_not_running(["CUDAExecutionProvider"])
    assert f"onnxruntime {ort.__version__}) is built without CUDAExecutionProvider" in reason
    assert "pip uninstall -y onnxruntime && pip install 'onnxruntime-gpu>=1.17'" in reason


def test_a_gpu_target_that_falls_back_is_not_runnable_here():
    # convert verifies and bench times a target only where it really runs (else ORT CPU, marked as such).
    for target in ("cuda", "cuda-trt"):
        ok, why = TARGETS[target].runnable_here()
        assert ok or "runs without" in why


def test_tensorrt_provider_gets_precision_device_and_an_engine_cache(tmp_path):
    opts = provider_options(["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
                            device="cuda:1", precision="int8", env={"EDGE_VAD_CACHE": str(tmp_path)})
    cache = str(tmp_path / "onnxruntime-trt")
    assert opts == [
        {"device_id": 1, "trt_fp16_enable": False, "trt_int8_enable": True, "trt_engine_cache_enable": True,
         "trt_engine_cache_path": cache, "trt_timing_cache_enable": True, "trt_timing_cache_path": cache},
        {"device_id": 1},
        {},
    ]
    assert provider_options(["TensorrtExecutionProvider"], "cuda:0", "fp16", env={})[0]["trt_fp16_enable"] is True


def test_a_cuda_bundle_reaches_the_check_through_the_daemons_stream(tmp_path):
    """CameraStream hands the bundle's providers, device and precision to the backend."""
    from edge_vad.runtime.stream import CameraStream

    root = tmp_path / "cuda-bundle"
    shutil.copytree(MODEL.parent, root)
    manifest = json.loads((root / MANIFEST).read_text())
    manifest["target"].update(name="cuda", providers=list(TARGETS["cuda"].providers), device="cuda:0", precision="fp32")
    (root / MANIFEST).write_text(json.dumps(manifest))
    if _runs_here("cuda"):
        stream = CameraStream(load_bundle(root))
        assert stream.backend.providers[0] == "CUDAExecutionProvider"
        return
    with pytest.raises(EdgeVadError, match="asked ONNX Runtime for CUDAExecutionProvider, CPUExecutionProvider"):
        CameraStream(load_bundle(root))
