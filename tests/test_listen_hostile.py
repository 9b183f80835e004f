"""`edge-vad listen` against a hostile publisher on a real mosquitto: whatever arrives, the terminal shows
one escaped line per message, memory stays bounded, and snapshots stay inside their folder and limits."""

from __future__ import annotations

import io
import json
import os

import paho.mqtt.client as mqtt
import pytest

from edge_vad.runtime.alerts.listen import Listener
from helpers import wait_until


@pytest.fixture
def attacker(mosquitto):
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="attacker")
    c.connect(mosquitto.host, mosquitto.port)
    c.loop_start()
    yield c
    c.disconnect()
    c.loop_stop()


def _send(client, topic, payload, qos=1):
    client.publish(topic, payload, qos=qos).wait_for_publish(5)


def _jpeg(comment: bytes, size: int = 2000) -> bytes:
    body = b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment
    return b"\xff\xd8" + body + b"\x00" * size + b"\xff\xd9"


def test_escape_sequences_and_forged_lines_never_reach_the_terminal(mosquitto, attacker):
    out = io.StringIO()
    evil = {"type": "start\x1b[2J\x1b[31m", "device": "dev1\x07", "camera": "cam\n2023-11-14T22:13:20Z  dev9/x  END",
            "id": "\x1b]0;pwned\x07", "msg_id": "m1", "score": "\x1b[5m", "start_time": "\u202eevil\r",
            "frame_index": "1\n2"}
    with Listener(mosquitto.url, out=out, max_events=1) as listener:
        # (mosquitto itself refuses control characters in topic names; payloads are anyone's.)
        _send(attacker, "edge-vad/dev1/available", "online\x1b[2J\nFORGED")
        _send(attacker, "edge-vad/dev1/cam/events", json.dumps(evil).encode())
        assert listener.wait(5)
        assert wait_until(lambda: out.getvalue().count("\n") >= 2, 5)
    text = out.getvalue()
    assert "\x1b" not in text and "\x07" not in text and "\r" not in text and "\u202e" not in text
    lines = text.splitlines()
    assert len(lines) == 2, lines  # one per message: nothing forged a line of its own
    assert "\\x1b]0;p" in text and "\\n2023-11-14" in text and "\\x1b[2J" in text


def test_de_duplication_and_history_stay_bounded(mosquitto, attacker):
    n = 3000
    with Listener(mosquitto.url, out=None, dedup_size=200, keep=100) as listener:
        for i in range(n):
            attacker.publish("edge-vad/dev1/cam/events", json.dumps({"type": "update", "msg_id": f"{i:032x}"}), qos=0)
        _send(attacker, "edge-vad/dev1/cam/events", json.dumps({"type": "update", "msg_id": f"{n - 1:032x}"}))
        _send(attacker, "edge-vad/dev1/cam/events", json.dumps({"type": "end", "msg_id": "last"}))
        assert listener.wait_for(lambda: listener.events and listener.events[-1]["msg_id"] == "last", 10)
        assert listener.duplicates == 1, "a recent copy is still recognised"
        assert len(listener._seen) <= 200 and len(listener.events) <= 100 and len(listener.received) <= 100
        assert listener.count == n + 1


def test_oversized_and_malformed_messages_are_ignored_and_said_once(mosquitto, attacker):
    out = io.StringIO()
    with Listener(mosquitto.url, out=out) as listener:
        for _ in range(3):
            _send(attacker, "edge-vad/dev1/cam/events", b"{" + b" " * (200 << 10) + b"}")
            _send(attacker, "edge-vad/dev1/cam/events", b"[1, 2]")
        _send(attacker, "edge-vad/dev1/cam/events", json.dumps({"type": "end", "msg_id": "ok"}))
        assert listener.wait_for(lambda: listener.count == 1, 5)
        assert listener.ignored == 6
    ignored = [line for line in out.getvalue().splitlines() if line.startswith("ignored")]
    assert len(ignored) == 2, ignored


def test_snapshot_names_come_only_from_valid_ids_and_stay_in_their_folder(mosquitto, attacker, tmp_path):
    snaps = tmp_path / "snaps"
    (snaps / "dev1_cam_sub").mkdir(parents=True)
    good_id = "0123456789abcdef0123456789abcdef"
    with Listener(mosquitto.url, out=None, snapshot_dir=snaps, max_snapshots=3) as listener:
        _send(attacker, "edge-vad/dev1/cam/snapshot", _jpeg(b"edge-vad event sub/../../escaped"))
        _send(attacker, "edge-vad/dev1/cam/snapshot", _jpeg(b"edge-vad event " + good_id.encode()))
        _send(attacker, "edge-vad/dev1/cam/snapshot", b"not a jpeg" * 10)
        _send(attacker, "edge-vad/dev1/cam/snapshot", _jpeg(b"x", size=9 << 20))  # 9 MB
        for _ in range(3):  # over the count limit from the second one on
            _send(attacker, "edge-vad/dev1/cam/snapshot", _jpeg(b"edge-vad event " + good_id.encode()))
        assert listener.wait_for(lambda: listener.snapshots_saved == 3 and listener.ignored == 4, 10), (
            listener.snapshots_saved, listener.ignored)
    assert not (tmp_path / "escaped.jpg").exists()
    saved = [p for p in snaps.rglob("*") if p.is_file()]
    assert all(p.parent == snaps for p in saved), saved
    assert (snaps / f"dev1_cam_{good_id}.jpg").exists()
    for p in saved:
        assert os.stat(p).st_mode & 0o077 == 0, f"{p} is readable by others"
