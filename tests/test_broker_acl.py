"""The shipped broker setup, for real: Debian's mosquitto.conf with the shipped conf.d snippet, ACL,
certificates from make-certs.sh and passwords from make-passwd.sh; devices publish over TLS.

A device may publish only under its own id. One that publishes elsewhere (its device_id is not its MQTT
username) is refused with an MQTT 5 PUBACK reason 0x87: the daemon must keep those messages, say so and
exit with "undelivered", where MQTT 3.1.1 had them acknowledged and deleted as delivered.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import ssl
import subprocess
import sys
import threading

import paho.mqtt.client as mqtt
import pytest

from daemon_helpers import make_config
from helpers import REPO, find_mosquitto, free_port, wait_for_port, wait_until

pytestmark = pytest.mark.slow

DEBIAN_CONF = "/etc/mosquitto/mosquitto.conf"
USERS = {"dev-a": "horse-battery-a", "dev-b": "horse-battery-b", "homeassistant": "staple-ha"}


class DebianMosquitto:
    """mosquitto started from a copy of Debian's main config whose include_dir holds the shipped snippet."""

    host = "127.0.0.1"

    def __init__(self, tmp):
        self.tmp = tmp
        self.port = free_port()  # the snippet's TLS listener (8883 on a device)
        self.plain_port = free_port()  # its loopback listener (1883)
        fw = REPO / "firmware_configs" / "mosquitto"
        certs = tmp / "certs"
        subprocess.run(["sh", str(fw / "make-certs.sh"), "-d", str(certs), "localhost", "127.0.0.1"], check=True,
                       capture_output=True)
        self.ca_file = certs / "ca.crt"
        passwd = tmp / "passwd"
        for user, password in USERS.items():
            subprocess.run(["sh", str(fw / "make-passwd.sh"), "-f", str(passwd), user],
                           input=f"{password}\n{password}\n", text=True, check=True, capture_output=True)
        shutil.copy(fw / "edge-vad.acl", tmp / "edge-vad.acl")
        conf_d = tmp / "conf.d"
        conf_d.mkdir()
        snippet = (fw / "edge-vad.conf").read_text()
        for old, new in (("/etc/mosquitto/passwd", str(passwd)), ("/etc/mosquitto/edge-vad.acl", str(tmp / "edge-vad.acl")),
                         ("/etc/mosquitto/certs/", f"{certs}/"), ("listener 8883", f"listener {self.port}"),
                         ("listener 1883 127.0.0.1", f"listener {self.plain_port} 127.0.0.1")):
            assert old in snippet, old
            snippet = snippet.replace(old, new)
        (conf_d / "edge-vad.conf").write_text(snippet)
        main = []
        for line in open(DEBIAN_CONF).read().splitlines():
            key = line.split(" ", 1)[0]
            rewritten = {"pid_file": f"pid_file {tmp / 'mosquitto.pid'}",
                         "persistence_location": f"persistence_location {tmp}/",
                         "log_dest": f"log_dest file {tmp / 'mosquitto.log'}",
                         "include_dir": f"include_dir {conf_d}"}.get(key)
            main.append(rewritten or line)
        # Started as root, mosquitto would drop to user 'mosquitto', who cannot read this test's 0700 folder.
        import getpass

        main.append(f"user {getpass.getuser()}")
        self.config = tmp / "mosquitto.conf"
        self.config.write_text("\n".join(main) + "\n")
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen([find_mosquitto(), "-c", str(self.config)], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        if not wait_for_port(self.host, self.port, 10):
            self.proc.kill()
            out = self.proc.communicate()[0]
            log = (self.tmp / "mosquitto.log").read_text() if (self.tmp / "mosquitto.log").exists() else ""
            pytest.fail(f"mosquitto with Debian's config and the shipped snippet did not start:\n{out}\n{log}")

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture
def debian_mosquitto(tmp_path):
    for tool in ("openssl", "mosquitto_passwd"):
        if shutil.which(tool) is None and not os.path.exists(f"/usr/bin/{tool}"):
            pytest.skip(f"{tool} is not installed (apt-get install -y mosquitto openssl)")
    if find_mosquitto() is None or not os.path.exists(DEBIAN_CONF):
        pytest.skip(f"needs Debian's mosquitto package ({DEBIAN_CONF}): apt-get install -y mosquitto")
    broker = DebianMosquitto(tmp_path / "broker")
    broker.tmp.mkdir() if not broker.tmp.exists() else None
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


class Watcher:
    """Home Assistant's view: user 'homeassistant' over TLS, reading the devices and their discovery topics."""

    def __init__(self, broker):
        self.messages: list[tuple[str, bytes, bool]] = []
        self.lock = threading.Lock()
        ready = threading.Event()
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="ha-watcher", protocol=mqtt.MQTTv5)
        c.tls_set(ca_certs=str(broker.ca_file), cert_reqs=ssl.CERT_REQUIRED)
        c.username_pw_set("homeassistant", USERS["homeassistant"])
        c.on_connect = lambda cl, *a: cl.subscribe([("homeassistant/#", 1), ("edge-vad/#", 1)])
        c.on_subscribe = lambda *a: ready.set()
        c.on_message = self._on_message
        c.connect(broker.host, broker.port)
        c.loop_start()
        assert ready.wait(10)
        self.client = c

    def _on_message(self, client, userdata, m):
        with self.lock:
            self.messages.append((m.topic, m.payload, m.retain))

    def topics(self) -> list[str]:
        with self.lock:
            return [t for t, _, _ in self.messages]

    def events(self) -> list[dict]:
        with self.lock:
            return [json.loads(p) for t, p, _ in self.messages if t.endswith("/events")]

    def stop(self):
        self.client.disconnect()
        self.client.loop_stop()


def _device_config(tmp_path, broker, clip, bundle, user: str, device_id: str, state: str):
    pw = tmp_path / f"{user}.pw"
    pw.write_text(USERS[user] + "\n")
    return make_config(tmp_path, broker, [{"name": "cam", "source": str(clip), "bundle": str(bundle)}],
                       device_id=device_id, prefix="edge-vad", state={"dir": str(tmp_path / state)},
                       outputs={"homeassistant": {"enabled": True}, "stats_interval_s": 0.5},
                       broker={"username": user, "password_file": str(pw), "tls": {"ca_file": str(broker.ca_file)},
                               "reconnect_min_s": 1, "reconnect_max_s": 1})


def test_devices_publish_only_their_own_topics_and_a_refusal_keeps_the_messages(
        debian_mosquitto, daemon_bundle, anomaly_clip, tmp_path, caplog):
    from edge_vad.runtime.daemon.scheduler import Daemon
    from edge_vad.runtime.daemon.exit_codes import OK, UNDELIVERED

    caplog.set_level(logging.INFO)
    watcher = Watcher(debian_mosquitto)
    try:
        # The device whose device_id is its MQTT username: everything arrives, discovery included.
        own = Daemon(_device_config(tmp_path, debian_mosquitto, anomaly_clip, daemon_bundle, "dev-a", "dev-a", "a"))
        own.run(install_signals=False)
        assert own.outcome()[0] == OK and own.outbox_depth_at_exit == 0
        assert own.publisher.protocol == "5"
        produced = [m["msg_id"] for m in own.produced]
        assert len(produced) >= 2
        assert wait_until(lambda: {e["msg_id"] for e in watcher.events()} >= set(produced), 10)
        assert "homeassistant/binary_sensor/dev-a/cam/config" in watcher.topics()
        assert "homeassistant/image/dev-a/cam/config" in watcher.topics()
        assert "edge-vad/dev-a/cam/state" in watcher.topics()

        # dev-b publishing as dev-a (its config's device_id is not its username): every row refused, kept.
        def send_marker(topic: str) -> None:
            """Publish as dev-a and wait until the watcher has it: everything published before has arrived."""
            marker = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="marker", protocol=mqtt.MQTTv5)
            marker.tls_set(ca_certs=str(debian_mosquitto.ca_file), cert_reqs=ssl.CERT_REQUIRED)
            marker.username_pw_set("dev-a", USERS["dev-a"])
            marker.connect(debian_mosquitto.host, debian_mosquitto.port)
            marker.loop_start()
            marker.publish(topic, b"m", qos=1).wait_for_publish(10)
            marker.disconnect()
            marker.loop_stop()
            assert wait_until(lambda: topic in watcher.topics(), 10)

        # The first run's last messages (its retained 'offline') have reached the watcher before we count.
        send_marker("edge-vad/dev-a/marker-before")
        caplog.clear()
        before = len(watcher.messages)
        intruder = Daemon(_device_config(tmp_path, debian_mosquitto, anomaly_clip, daemon_bundle, "dev-b", "dev-a",
                                         "b"))
        intruder.run(install_signals=False, drain_timeout=5)
        code, lines = intruder.outcome()
        assert code == UNDELIVERED, lines
        rows = len(intruder.produced) + 2  # events (and their states, snapshots) and 2 discovery configs
        assert intruder.outbox_depth_at_exit >= rows
        assert len(intruder.publisher.denied) == intruder.outbox_depth_at_exit
        assert any("Not authorized" in r for r in intruder.refused_at_exit)
        # Every refused publish was answered before the run ended; a marker published now arrives after
        # anything of the intruder's that the broker had let through.
        send_marker("edge-vad/dev-a/marker")
        leaked = [t for t, _, _ in watcher.messages[before:] if t != "edge-vad/dev-a/marker"]
        assert leaked == [], leaked
        refusals = [r.getMessage() for r in caplog.records if "refused a publish to edge-vad/dev-a/cam/events" in
                    r.getMessage()]
        assert len(refusals) == 1, "said once per topic and reason, not per message"
        assert "Not authorized" in refusals[0] and "device_id is the MQTT username" in refusals[0]
    finally:
        watcher.stop()
    # The count is in the stats (`edge-vad status`) and the rows are still on disk.
    stats = json.loads((tmp_path / "b" / "stats.json").read_text())
    assert stats["broker"]["refused"] == intruder.outbox_depth_at_exit and stats["broker"]["refused_total"] >= rows
    proc = subprocess.run([sys.executable, "-m", "cli", "status", "--state-dir", str(tmp_path / "b")], cwd=REPO,
                          capture_output=True, text=True)
    assert proc.returncode == 0 and "REFUSED by the broker" in proc.stdout, proc.stdout + proc.stderr
    from edge_vad.runtime.alerts.outbox import Outbox

    box = Outbox(tmp_path / "b" / "outbox.sqlite")
    assert box.depth() == intruder.outbox_depth_at_exit
    box.close()
