"""Operations: credentials, snapshots, Home Assistant, metrics, status, batched cameras."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import urllib.request

import pytest

from daemon_helpers import Subscriber, jpeg_ok, make_config
from helpers import REPO, wait_until

pytestmark = pytest.mark.slow


def test_wrong_credentials_are_reported_retried_and_never_logged(daemon_bundle, anomaly_clip, mosquitto_auth,
                                                                  tmp_path, caplog, monkeypatch):
    from edge_vad.runtime.daemon.scheduler import Daemon

    cams = [{"name": "cam-a", "source": str(anomaly_clip), "bundle": str(daemon_bundle)}]
    (tmp_path / "pw").write_text("wrong-password-123\n")
    cfg = make_config(tmp_path, mosquitto_auth, cams,
                      broker={"username": "edge", "password_file": str(tmp_path / "pw"), "reconnect_min_s": 1})
    caplog.set_level(logging.INFO)
    daemon = Daemon(cfg)
    daemon.run(install_signals=False, drain_timeout=2.0)  # the file ends; alerts cannot be delivered
    assert "not authori" in (daemon.publisher.last_error or "").lower()
    assert "refused the connection" in caplog.text and "broker.username" in caplog.text
    assert "wrong-password-123" not in caplog.text
    waiting = daemon.outbox_depth_at_exit
    produced = [m["msg_id"] for m in daemon.produced]
    assert waiting >= len(produced) >= 2, "alerts stay on disk while the broker refuses us"

    # With the right password (from the environment this time) the backlog goes out on the next start.
    monkeypatch.setenv("EDGE_MQTT_PW", "right-horse-battery")
    consumer = Subscriber(mosquitto_auth)
    consumer.client_id = "consumer-auth"
    import paho.mqtt.client as mqtt

    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="consumer-auth")
    c.username_pw_set("edge", "right-horse-battery")
    got = []
    ready = threading.Event()
    c.on_connect = lambda cl, *a: cl.subscribe("t/+/+/events", 1)
    c.on_subscribe = lambda *a: ready.set()
    c.on_message = lambda cl, u, m: got.append(json.loads(m.payload))
    c.connect(mosquitto_auth.host, mosquitto_auth.port)
    c.loop_start()
    try:
        assert ready.wait(5)
        cfg = make_config(tmp_path, mosquitto_auth, cams,
                          broker={"username": "edge", "password_env": "EDGE_MQTT_PW"})
        second = Daemon(cfg)
        second.run(install_signals=False)
        assert second.outbox_depth_at_exit == 0
        all_ids = produced + [m["msg_id"] for m in second.produced]
        assert wait_until(lambda: len({m["msg_id"] for m in got}) >= len(all_ids), 10)
    finally:
        c.disconnect()
        c.loop_stop()
    first_seen = []
    for m in got:
        if m["msg_id"] not in first_seen:
            first_seen.append(m["msg_id"])
    assert first_seen == all_ids, "the stored backlog first, in order, then the new run's events"


def test_two_cameras_snapshots_homeassistant_metrics_status_and_listen(daemon_bundle, anomaly_clip, mosquitto,
                                                                      tmp_path):
    from edge_vad.runtime.daemon.scheduler import Daemon
    from edge_vad.runtime.alerts.listen import Listener
    from edge_vad.runtime.alerts.snapshots import event_id_of

    cams = [{"name": n, "source": str(anomaly_clip), "bundle": str(daemon_bundle)} for n in ("front", "back")]
    cfg = make_config(tmp_path, mosquitto, cams, metrics={"enabled": True, "port": 0},
                      outputs={"homeassistant": {"enabled": True}, "stats_interval_s": 0.5})
    snaps = tmp_path / "snaps"
    ha = []
    import paho.mqtt.client as mqtt

    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="ha")
    c.on_message = lambda cl, u, m: ha.append((m.topic, m.payload, m.retain))
    c.connect(mosquitto.host, mosquitto.port)
    c.subscribe("homeassistant/#", 1)
    c.loop_start()
    with Listener(mosquitto.url, prefix="t", out=None, snapshot_dir=snaps) as listener:
        daemon = Daemon(cfg)
        metrics_text = {}

        def scrape():
            assert wait_until(lambda: daemon.metrics is not None and daemon.cameras[0].stats.processed > 20, 20)
            url = f"http://127.0.0.1:{daemon.metrics.port}/metrics"
            metrics_text["body"] = urllib.request.urlopen(url, timeout=5).read().decode()

        scraper = threading.Thread(target=scrape)
        scraper.start()
        summaries = daemon.run(install_signals=False)
        scraper.join(10)
        events = [m for m in daemon.produced]
        assert {m["camera"] for m in events if m["type"] == "start"} == {"front", "back"}
        assert listener.wait_for(lambda: len(listener.events) >= len(events) and len(listener.snapshots) >= 4, 10)
    c.loop_stop()
    c.disconnect()
    assert sum(s.frames for s in summaries.values()) == 120
    # Snapshots: valid JPEGs, named after their event, one per start and end.
    ends = [m for m in events if m["type"] == "end"]
    for m in ends:
        path = snaps / f"box1_{m['camera']}_{m['id']}.jpg"
        assert path.exists() and jpeg_ok(path.read_bytes()) and event_id_of(path.read_bytes()) == m["id"]
        assert m["snapshot_topic"] == f"t/box1/{m['camera']}/snapshot"
    # Home Assistant: a binary sensor and an image per camera, retained.
    configs = {t: json.loads(p) for t, p, r in ha}
    assert len(configs) == 4
    sensor = configs["homeassistant/binary_sensor/box1/front/config"]
    assert sensor["state_topic"] == "t/box1/front/state" and sensor["availability_topic"] == "t/box1/available"
    assert configs["homeassistant/image/box1/back/config"]["image_topic"] == "t/box1/back/snapshot"
    # Prometheus text.
    body = metrics_text["body"]
    assert 'edge_vad_frames_processed_total{camera="front"}' in body
    assert 'edge_vad_frame_latency_seconds_bucket{camera="back",le="+Inf"}' in body
    assert "edge_vad_outbox_depth " in body and 'edge_vad_reconnects_total{kind="broker"} 0' in body
    # Status, from the state dir the config names.
    config_file = tmp_path / "device.yaml"
    import yaml

    config_file.write_text(yaml.safe_dump({"device_id": "box1", "state": {"dir": str(cfg.state.dir)},
                                           "cameras": cams}))
    proc = subprocess.run([sys.executable, "-m", "cli", "status", "--config", str(config_file)], cwd=REPO,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "device box1" in proc.stdout and "front" in proc.stdout and "outbox 0 waiting" in proc.stdout
