"""What a restart leaves behind, seen by a consumer and by Home Assistant: state OFF after an orphan end,
no ghost entities, no new ids for a replayed recording, a clean "stopped" in status, private state files."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
import threading
import uuid

import paho.mqtt.client as mqtt
import pytest

from daemon_helpers import FrameReader, Subscriber, make_config, vtest_frames, write_config
from helpers import REPO, wait_until

pytestmark = pytest.mark.slow


def _run_cli(config, log_path):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.Popen([sys.executable, "-m", "cli", "run", "--config", str(config), "--verbose"],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=open(log_path, "w"))


def retained(broker, pattern: str, timeout: float = 5.0) -> dict[str, bytes]:
    """What a client subscribing now gets as retained messages (a fresh Home Assistant, say)."""
    got: dict[str, bytes] = {}
    done = threading.Event()
    probe = f"probe/{uuid.uuid4().hex}"
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"retained-{uuid.uuid4().hex[:8]}")

    def on_message(cl, u, m):
        if m.topic == probe:
            done.set()
        elif m.retain:
            got[m.topic] = m.payload

    c.on_message = on_message
    c.on_connect = lambda cl, *a: cl.subscribe([(pattern, 1), (probe, 1)])
    # The broker sends the retained messages with its SUBACK; what we publish after that comes after them.
    c.on_subscribe = lambda cl, *a: cl.publish(probe, b"x", qos=1)
    c.connect(broker.host, broker.port)
    c.loop_start()
    try:
        # Retained messages are sent on subscription, before the probe published after it.
        assert done.wait(timeout)
    finally:
        c.disconnect()
        c.loop_stop()
    return got


def test_an_orphan_end_after_sigkill_turns_home_assistants_sensor_off(daemon_bundle, anomaly_clip, mosquitto,
                                                                     tmp_path):
    from edge_vad.runtime.daemon.scheduler import Daemon

    consumer = Subscriber(mosquitto).start()
    cams = [{"name": "cam-a", "source": str(anomaly_clip), "bundle": str(daemon_bundle), "realtime": True}]
    config = write_config(tmp_path, mosquitto, cams, outputs={"homeassistant": {"enabled": True}})
    proc = _run_cli(config, tmp_path / "run1.log")
    try:
        assert wait_until(lambda: any(e["type"] == "start" for e in consumer.events()), 30)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
        consumer.stop()
    assert retained(mosquitto, "t/box1/cam-a/state") == {"t/box1/cam-a/state": b"ON"}
    # The camera comes back showing a quiet scene: only the orphan end can turn the sensor off.
    quiet = FrameReader(vtest_frames(300, 310))
    cfg = make_config(tmp_path, mosquitto, cams, outputs={"homeassistant": {"enabled": True}})
    daemon = Daemon(cfg, sources={"cam-a": quiet})
    daemon.run(install_signals=False)
    assert [m.get("reason") for m in daemon.produced] == ["restart"]
    assert retained(mosquitto, "t/box1/cam-a/state") == {"t/box1/cam-a/state": b"OFF"}


def test_a_removed_camera_leaves_no_ghost_entity(daemon_bundle, mosquitto, tmp_path):
    from edge_vad.runtime.daemon.scheduler import Daemon

    frames = vtest_frames(0, 8)
    cams = [{"name": n, "source": "unused", "bundle": str(daemon_bundle)} for n in ("front", "back")]
    ha = {"homeassistant": {"enabled": True}}
    first = Daemon(make_config(tmp_path, mosquitto, cams, outputs=ha),
                   sources={c["name"]: FrameReader(frames) for c in cams})
    first.run(install_signals=False)
    before = retained(mosquitto, "homeassistant/#")
    assert set(before) == {f"homeassistant/{k}/box1/{n}/config" for k in ("binary_sensor", "image")
                           for n in ("front", "back")}
    # 'back' is removed from the config: its entities must go, and its retained state with them.
    second = Daemon(make_config(tmp_path, mosquitto, cams[:1], outputs=ha), sources={"front": FrameReader(frames)})
    second.run(install_signals=False)
    assert set(retained(mosquitto, "homeassistant/#")) == {"homeassistant/binary_sensor/box1/front/config",
                                                           "homeassistant/image/box1/front/config"}
    # Home Assistant turned off altogether: nothing of this device stays announced.
    third = Daemon(make_config(tmp_path, mosquitto, cams[:1]), sources={"front": FrameReader(frames)})
    third.run(install_signals=False)
    assert retained(mosquitto, "homeassistant/#") == {}


def test_status_after_a_clean_shutdown_says_stopped(daemon_bundle, anomaly_clip, mosquitto, tmp_path):
    from edge_vad.runtime.daemon.scheduler import Daemon

    cfg = make_config(tmp_path, mosquitto, [{"name": "cam-a", "source": str(anomaly_clip),
                                             "bundle": str(daemon_bundle)}])
    Daemon(cfg).run(install_signals=False)
    proc = subprocess.run([sys.executable, "-m", "cli", "status", "--state-dir", str(cfg.state.dir)], cwd=REPO,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "STOPPED" in proc.stdout and "not connected (daemon stopped)" in proc.stdout
    assert "DISCONNECTED" not in proc.stdout and "camera DOWN" not in proc.stdout, proc.stdout
    assert json.loads((cfg.state.dir / "stats.json").read_text())["state"] == "stopped"


def test_state_files_are_private_whatever_the_umask(daemon_bundle, anomaly_clip, mosquitto, tmp_path):
    from edge_vad.runtime.alerts.listen import Listener
    from edge_vad.runtime.daemon.scheduler import Daemon

    old = os.umask(0o022)
    try:
        cfg = make_config(tmp_path, mosquitto, [{"name": "cam-a", "source": str(anomaly_clip),
                                                 "bundle": str(daemon_bundle)}],
                          outputs={"homeassistant": {"enabled": True}})
        with Listener(mosquitto.url, prefix="t", out=None, snapshot_dir=tmp_path / "snaps") as listener:
            daemon = Daemon(cfg)
            daemon.run(install_signals=False)
            assert listener.wait_for(lambda: len(listener.snapshots) >= 2, 10)
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in cfg.state.dir.iterdir()}
    modes.update({f"snapshot {p.name}": stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "snaps").iterdir()})
    assert {"outbox.sqlite", "state-cam-a.npz", "stats.json"} <= set(modes)
    for name, mode in modes.items():
        allowed = 0o640 if name == "stats.json" else 0o600
        assert mode & ~allowed == 0, f"{name}: {oct(mode)}"


def test_a_replayed_recording_restarted_after_sigkill_sends_no_event_under_a_new_id(daemon_bundle, anomaly_clip,
                                                                                      mosquitto, tmp_path):
    consumer = Subscriber(mosquitto).start()
    config = write_config(tmp_path, mosquitto, [{"name": "cam-a", "source": str(anomaly_clip),
                                                 "bundle": str(daemon_bundle), "realtime": True}],
                          state={"dir": str(tmp_path / "state"), "snapshot_interval_s": 0.5})
    logs = [tmp_path / "run1.log", tmp_path / "run2.log"]
    proc = _run_cli(config, logs[0])
    try:
        assert wait_until(lambda: any(e["type"] == "start" for e in consumer.events()), 30), logs[0].read_text()
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        proc = _run_cli(config, logs[1])
        assert proc.wait(60) == 0, logs[1].read_text()
        produced = set(re.findall(r"msg_id=([0-9a-f]{32})", logs[0].read_text() + logs[1].read_text()))
        assert wait_until(lambda: {m["msg_id"] for m in consumer.unique()} >= produced, 10)
    finally:
        if proc.poll() is None:
            proc.kill()
        consumer.stop()
    run2 = logs[1].read_text()
    resumed = re.search(r"resuming \S+ at frame (\d+)", run2)
    assert resumed and int(resumed.group(1)) > 0, "the replay resumes where the state snapshot was, not at frame 0"
    got = consumer.unique()
    starts: dict[int, set[str]] = {}
    for m in got:
        if m["type"] == "start":
            starts.setdefault(m["start_frame"], set()).add(m["id"])
    assert starts and all(len(ids) == 1 for ids in starts.values()), f"an event raised again under a new id: {starts}"
    ends: dict[str, int] = {}
    for m in got:
        if m["type"] == "end":
            ends[m["id"]] = ends.get(m["id"], 0) + 1
    assert set(ends) == {i for ids in starts.values() for i in ids} and set(ends.values()) == {1}, ends
