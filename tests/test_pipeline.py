"""Every registered model, end to end: train → checkpoint → ONNX bundle → parity → daemon → MQTT.

Generated from the registry, so a new model is covered without new test code.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from edge_vad.errors import EdgeVadError
from edge_vad.models import get_model, list_models
from helpers import flying_block_clip, need_vtest

pytestmark = pytest.mark.slow
MODELS = list_models()


@pytest.fixture(scope="module", params=MODELS)
def trained(request, tmp_path_factory):
    from edge_vad.training.trainer import train

    vtest = need_vtest()
    name = request.param
    out = tmp_path_factory.mktemp(f"ckpt-{name}")
    entry = get_model(name)
    info = train(name, "edge", vtest, out, frames="0:240", epochs=1, overrides=entry.test_overrides, log=lambda *a: None)
    return name, out, info


@pytest.fixture(scope="module")
def bundle(trained, tmp_path_factory):
    from converters import convert

    name, ckpt, _ = trained
    out = tmp_path_factory.mktemp(f"bundle-{name}") / "bundle"
    manifest = convert(ckpt, "cpu", out, log=lambda *a: None)
    return out, manifest


def test_checkpoint_is_safetensors_and_json(trained):
    _, ckpt, info = trained
    assert (ckpt / "model.safetensors").exists()
    assert json.loads((ckpt / "config.json").read_text())["state"] == "done"
    calib = json.loads((ckpt / "calibration.json").read_text())
    # Calibrated on the held-out tail of 0:160, never on training frames.
    assert calib["source"]["frames"] == info["data"]["holdout"] == [[60, 80], [140, 160], [220, 240]]
    assert info["data"]["train"] == [[0, 60], [80, 140], [160, 220]]


def test_training_resumes_where_it_stopped(trained, tmp_path):
    import shutil

    from edge_vad.training.trainer import train

    name, ckpt, _ = trained
    copy = tmp_path / "ckpt"
    shutil.copytree(ckpt, copy)
    logs = []
    info = train(name, "edge", need_vtest(), copy, frames="0:240", epochs=2,
                 overrides=get_model(name).test_overrides, log=logs.append)
    assert any("resuming" in line and "epoch 1/2" in line for line in logs)
    assert [h["epoch"] for h in info["history"]] == [1, 2]


def test_resume_refuses_a_different_model_config(trained, tmp_path):
    import shutil

    from edge_vad.training.trainer import train

    name, ckpt, _ = trained
    copy = tmp_path / "ckpt"
    shutil.copytree(ckpt, copy)
    with pytest.raises(EdgeVadError, match="trained with different options"):
        train(name, "edge", need_vtest(), copy, frames="0:240", epochs=2, log=lambda *a: None)


def test_bundle_manifest_describes_the_graph(trained, bundle):
    from edge_vad.runtime.bundle.loader import load_bundle

    out, manifest = bundle
    loaded = load_bundle(out)
    m = loaded.manifest
    assert m.verify["parity_passed"] is True
    # Explicit state, as the model declares it (a density over objects carries none).
    from edge_vad.training.checkpoint import load_model

    assert len(m.state) == len(load_model(trained[1])[0].state_specs())
    assert all(s.input != s.output for s in m.state)
    names = {t.name for t in m.graph.inputs}
    assert {"frame", *(s.input for s in m.state)} == names
    verify = json.loads((out / "verify.json").read_text())
    assert verify["parity"]["passed"] and verify["parity"]["max_rel_error"] < 1e-3
    assert set(m.files) == {"model.onnx", "verify.json"}


def test_tampered_bundle_is_refused(bundle, tmp_path):
    import shutil

    from edge_vad.runtime.bundle.loader import load_bundle

    copy = tmp_path / "b"
    shutil.copytree(bundle[0], copy)
    data = bytearray((copy / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(EdgeVadError, match="checksum mismatch"):
        load_bundle(copy)


def test_streaming_step_matches_windowed_scoring(trained, bundle):
    """The runtime's per-frame stream gives the batched evaluator's numbers."""
    from edge_vad.evaluation.scorers import score_bundle, score_checkpoint

    vtest = need_vtest()
    from edge_vad.runtime.bundle.loader import load_bundle

    span = (220, 220 + max(20, load_bundle(bundle[0]).manifest.warmup_frames + 12))
    a = score_checkpoint(trained[1], vtest, span)
    b = score_bundle(bundle[0], vtest, span)
    from converters.parity import FP32_TOLERANCE

    assert a.warmup == b.warmup
    # The same bar the converter sets for an FP32 bundle: float reordering between
    # batched torch and ONNX Runtime moves log-based scores (PSNR) by ~1e-4.
    np.testing.assert_allclose(a.errors[a.warmup:], b.errors[b.warmup:], rtol=FP32_TOLERANCE["rel_error"])
    np.testing.assert_allclose(a.stream[a.warmup:], b.stream[b.warmup:], atol=FP32_TOLERANCE["score"])


def test_daemon_publishes_events_to_a_real_broker(bundle, mosquitto, tmp_path):
    from edge_vad.data.frames import read_frames
    from edge_vad.runtime.daemon.scheduler import run_camera
    from edge_vad.runtime.alerts.listen import Listener

    normal = list(read_frames(need_vtest(), 140, 200))
    clip, (a, b) = flying_block_clip(tmp_path / "clip.avi", normal, anomaly_at=25)
    with Listener(mosquitto.url, prefix="t") as listener:
        summary = run_camera(bundle[0], str(clip), "cam-a", mosquitto.url, prefix="t", device_id="box1")
        assert listener.wait_for(lambda: len(listener.events) >= len(summary.events), timeout=10)
    starts = [e for e in summary.events if e["type"] == "start"]
    ends = [e for e in summary.events if e["type"] == "end"]
    assert starts, "a white block racing across the scene must raise an event"
    assert {e["id"] for e in starts} == {e["id"] for e in ends}, "every event that starts also ends"
    # The anomaly is inside some event.
    assert any(e["start_frame"] <= b and e["end_frame"] >= a for e in ends)
    got = [(e["id"], e["type"]) for e in listener.events]
    assert got == [(e["id"], e["type"]) for e in summary.events]
    assert all(e["camera"] == "cam-a" and e["device"] == "box1" for e in listener.events)
    assert listener.availability.get("box1") == "offline"
