"""`edge-vad run` tells scripts how it ended: one exit code per outcome, one clear line, no traceback."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading

import cv2
import numpy as np
import pytest

from daemon_helpers import Subscriber, make_config
from edge_vad.runtime.daemon import exit_codes
from helpers import REPO, free_port, wait_until, write_clip

pytestmark = pytest.mark.slow


def edge_vad(*args, timeout=120):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "cli", *map(str, args)], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)


def _sources(tmp_path):
    header_only = tmp_path / "header-only.avi"
    writer = cv2.VideoWriter(str(header_only), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    writer.release()
    noise = tmp_path / "noise.avi"
    noise.write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    tiny = write_clip(tmp_path / "tiny.avi", [np.full((1, 1, 3), 128, np.uint8)] * 10)
    return {"header-only": (header_only, "no usable frame"), "random bytes": (noise, "cannot open"),
            "/dev/null": ("/dev/null", "cannot open"),
            "1x1 video": (tiny, "all 10 frame(s) unusable (1×1 pixels, smaller than 8×8)")}


def test_an_unusable_source_exits_4_with_one_line(daemon_bundle, mosquitto, tmp_path):
    for kind, (source, message) in _sources(tmp_path).items():
        proc = edge_vad("run", "--bundle", daemon_bundle, "--source", source, "--broker", mosquitto.url,
                        "--state-dir", tmp_path / "state")
        assert proc.returncode == exit_codes.SOURCE_UNUSABLE, (kind, proc.returncode, proc.stderr)
        assert message in proc.stderr, (kind, proc.stderr)
        assert "Traceback" not in proc.stderr and "all messages acknowledged" not in proc.stdout + proc.stderr, kind


def _mismatched_bundle(daemon_bundle, tmp_path, edit):
    bad = tmp_path / "bad-bundle"
    shutil.copytree(daemon_bundle, bad)
    manifest = json.loads((bad / "manifest.json").read_text())
    edit(manifest)
    (bad / "manifest.json").write_text(json.dumps(manifest))  # the manifest itself has no checksum
    return bad


def _wrong_state_shape(m):
    m["state"][0]["shape"][0] += 3
    for spec in m["graph"]["inputs"]:
        if spec["name"] == m["state"][0]["input"]:
            spec["shape"][1] += 3  # consistent in the manifest: only the graph itself disagrees


def _wrong_error_map_name(m):
    m["graph"]["error_map_output"] = "no_such_output"  # fails only after the warm-up frames


@pytest.mark.parametrize("edit", [_wrong_state_shape, _wrong_error_map_name])
def test_a_bundle_that_cannot_score_exits_5_once_and_fails_validation(daemon_bundle, anomaly_clip, mosquitto,
                                                                     tmp_path, edit):
    bad = _mismatched_bundle(daemon_bundle, tmp_path, edit)
    proc = edge_vad("run", "--bundle", bad, "--source", anomaly_clip, "--broker", mosquitto.url,
                    "--state-dir", tmp_path / "state")
    assert proc.returncode == exit_codes.BUNDLE_INVALID, (proc.returncode, proc.stderr[-2000:])
    assert "camera cam0: bundle" in proc.stderr and "cannot score frames" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr[-2000:]
    cfg = tmp_path / "device.yaml"
    cfg.write_text(f"device_id: box1\ncameras:\n  - name: cam\n    source: {anomaly_clip}\n    bundle: {bad}\n")
    proc = edge_vad("config", "validate", cfg)
    assert proc.returncode == exit_codes.USAGE and "cameras[0].bundle (camera 'cam')" in proc.stderr
    assert "cannot score frames" in proc.stderr and "Traceback" not in proc.stderr


def test_undelivered_messages_exit_3_and_are_kept(daemon_bundle, anomaly_clip, tmp_path):
    port = free_port()  # nothing listens here
    proc = edge_vad("run", "--bundle", daemon_bundle, "--source", anomaly_clip, "--broker",
                    f"mqtt://127.0.0.1:{port}", "--state-dir", tmp_path / "state")
    assert proc.returncode == exit_codes.UNDELIVERED, (proc.returncode, proc.stderr[-2000:])
    assert "not acknowledged by the broker" in proc.stderr and str(tmp_path / "state") in proc.stderr
    assert "all messages acknowledged" not in proc.stdout + proc.stderr
    from edge_vad.runtime.alerts.outbox import Outbox

    box = Outbox(tmp_path / "state" / "outbox.sqlite")
    assert box.depth() >= 2
    box.close()


def test_exit_codes_are_in_the_run_help():
    proc = edge_vad("run", "--help")
    assert proc.returncode == 0
    text = " ".join(proc.stdout.split())
    for code in (exit_codes.UNDELIVERED, exit_codes.SOURCE_UNUSABLE, exit_codes.BUNDLE_INVALID):
        assert f" {code} " in text
    assert "not acknowledged by the broker" in text and "could not be opened" in text


def test_shutdown_while_disconnected_waits_for_the_broker_to_come_back(daemon_bundle, anomaly_clip,
                                                                     mosquitto_persistent, tmp_path):
    from edge_vad.runtime.daemon.scheduler import Daemon

    broker = mosquitto_persistent
    consumer = Subscriber(broker).start()
    broker.stop()
    cfg = make_config(tmp_path, broker, [{"name": "cam-a", "source": str(anomaly_clip), "bundle": str(daemon_bundle)}],
                      broker={"reconnect_min_s": 1, "reconnect_max_s": 1})
    daemon = Daemon(cfg)
    thread = threading.Thread(target=daemon.run, kwargs={"install_signals": False, "drain_timeout": 60}, daemon=True)
    thread.start()
    try:
        # The file is done and the daemon is shutting down with everything still in the outbox.
        assert wait_until(lambda: all(c.ended for c in daemon.cameras), 60)
        assert daemon.outbox.depth() >= 2 and not daemon.publisher.connected
        broker.start()
        thread.join(60)
        assert not thread.is_alive()
        produced = [m["msg_id"] for m in daemon.produced]
        assert wait_until(lambda: {m["msg_id"] for m in consumer.unique()} >= set(produced), 15)
    finally:
        daemon.stop()
        consumer.stop()
    assert daemon.outbox_depth_at_exit == 0 and daemon.outcome()[0] == exit_codes.OK


def test_a_roi_outside_the_frame_is_logged_once_not_per_frame(daemon_bundle, anomaly_clip, mosquitto, tmp_path,
                                                             caplog):
    import logging

    from edge_vad.runtime.daemon.scheduler import Daemon

    caplog.set_level(logging.INFO)
    cfg = make_config(tmp_path, mosquitto, [{"name": "cam-a", "source": str(anomaly_clip),
                                             "bundle": str(daemon_bundle), "roi": [5000, 10, 50, 50]}])
    daemon = Daemon(cfg)
    daemon.run(install_signals=False)
    assert daemon.cameras[0].capture.counters.corrupt == 60
    assert sum("lies outside" in r.getMessage() for r in caplog.records) == 1
