"""The outbox against real disk faults: damaged files, a full disk, a read-only one.

Full and read-only disks are real: a small tmpfs mounted on the state dir inside a private mount
namespace (``unshare -r -m``), filled up while the daemon runs, or mounted read-only before it starts.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from daemon_helpers import Subscriber
from edge_vad.runtime.alerts.outbox import Outbox
from helpers import REPO, wait_until

DRIVER = Path(__file__).with_name("disk_fault_driver.py")


def _filled(path: Path, rows: int = 200) -> list[bytes]:
    box = Outbox(path)
    payloads = [f"message {i} ".encode() * 200 for i in range(rows)]
    for p in payloads:
        box.put("t/box1/cam/events", p)
    box.close()
    return payloads


def _damage(path: Path, how: str) -> None:
    if how == "0 bytes":
        path.write_bytes(b"")
    elif how == "half truncated":
        os.truncate(path, path.stat().st_size // 2)
    else:
        path.write_bytes(os.urandom(path.stat().st_size))


@pytest.mark.parametrize("how", ["0 bytes", "half truncated", "garbage"])
def test_a_damaged_outbox_is_moved_aside_said_and_replaced(tmp_path, caplog, how):
    path = tmp_path / "outbox.sqlite"
    _filled(path)
    _damage(path, how)
    damaged = path.read_bytes()
    caplog.set_level(logging.ERROR)
    box = Outbox(path)
    assert box.moved_aside is not None and box.moved_aside.read_bytes() == damaged, "kept, never deleted"
    assert f"outbox {path} is damaged" in caplog.text and str(box.moved_aside) in caplog.text
    assert box.depth() == 0
    seq = box.put("t/a", b"fresh")
    assert [r.payload for r in box.after(0)] == [b"fresh"] and seq >= 1
    box.close()
    assert Outbox(path).depth() == 1


def test_a_daemon_starts_on_a_damaged_outbox_and_says_where_it_went(daemon_bundle, anomaly_clip, mosquitto, tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    (state / "outbox.sqlite").write_bytes(b"this is not an SQLite database, but it was one once" * 100)
    cfg = tmp_path / "device.yaml"
    cfg.write_text(json.dumps({"device_id": "box1", "prefix": "t", "state": {"dir": str(state)},
                               "broker": {"host": mosquitto.host, "port": mosquitto.port},
                               "cameras": [{"name": "cam", "source": str(anomaly_clip), "bundle": str(daemon_bundle)}]}))
    proc = subprocess.run([sys.executable, "-m", "cli", "run", "--config", str(cfg)], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "is damaged" in proc.stderr and "moved it aside to" in proc.stderr and "Traceback" not in proc.stderr
    aside = [p for p in state.iterdir() if p.name.startswith("outbox.sqlite.damaged-")]
    assert len(aside) == 1 and aside[0].read_bytes().startswith(b"this is not an SQLite")
    stats = json.loads((state / "stats.json").read_text())
    assert stats["outbox"]["moved_aside"] == str(aside[0])


def test_a_failed_commit_does_not_raise_and_the_row_waits_in_memory(tmp_path):
    box = Outbox(tmp_path / "outbox.sqlite", retry_s=0)
    box.put("t/a", b"on disk")
    # Another connection holds the write lock: the commit fails ("database is locked"), as on a broken disk.
    other = sqlite3.connect(str(tmp_path / "outbox.sqlite"), timeout=0)
    other.execute("BEGIN EXCLUSIVE")
    box._db.execute("PRAGMA busy_timeout=0")
    box.put("t/a", b"in memory", event={"id": "e1", "camera": "cam", "type": "start"})
    assert box.disk_error and box.in_memory == 1 and box.depth() == 2
    assert [r.payload for r in box.after(0)] == [b"on disk", b"in memory"]
    assert [e["id"] for e in box.open_events("cam")] == ["e1"]
    other.rollback()
    other.close()
    box.maintain()
    assert box.disk_error is None and box.in_memory == 0
    box.close()
    again = Outbox(tmp_path / "outbox.sqlite")
    assert [r.payload for r in again.after(0)] == [b"on disk", b"in memory"]
    assert [e["id"] for e in again.open_events("cam")] == ["e1"]
    again.close()


def _namespace_prefix() -> list[str]:
    """A private mount namespace where this user may mount: unprivileged (-r) if allowed, else as root."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is not installed")
    for prefix in (["unshare", "-r", "-m"], ["unshare", "-m"]):
        if subprocess.run([*prefix, "true"], capture_output=True).returncode == 0:
            return prefix
    pytest.skip("cannot create a mount namespace here (unprivileged user namespaces are disabled and this is not "
                "root): the disk-fault tests need one to mount a small tmpfs")


def _in_tmpfs(state: Path, size: str, command: list[str], mode: str = "rw") -> subprocess.CompletedProcess:
    state.mkdir(parents=True, exist_ok=True)
    script = 'mount -t tmpfs -o "size=$1,mode=0750,$2" tmpfs "$3" && shift 3 && exec "$@"'
    return subprocess.run([*_namespace_prefix(), "sh", "-c", script, "sh", size, mode, str(state), *command],
                          capture_output=True, text=True, timeout=300, cwd=REPO)


@pytest.mark.slow
def test_the_daemon_survives_a_state_disk_that_fills_up(daemon_bundle, anomaly_clip, mosquitto_persistent, tmp_path):
    """A read-only remount mid-run cannot be staged: Linux refuses it (EBUSY) while the outbox is open for
    writing. SQLite and the file writes fail the same way on both (SQLITE_FULL / SQLITE_READONLY, ENOSPC /
    EROFS), and a read-only dir at start is the next test."""
    import threading

    broker = mosquitto_persistent
    consumer = Subscriber(broker).start()
    out = tmp_path / "result.json"
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"state_dir": str(tmp_path / "state"), "host": broker.host, "port": broker.port,
                                "bundle": str(daemon_bundle), "clip": str(anomaly_clip),
                                "out": str(out)}))
    # The broker is away while the disk is broken: alerts can go neither to disk nor out, and must wait in
    # memory. It comes back when the disk is repaired (the driver says so with a file).
    broker.stop()
    done = {}
    runner = threading.Thread(target=lambda: done.update(
        proc=_in_tmpfs(tmp_path / "state", "4m", [sys.executable, str(DRIVER), str(spec)])))
    runner.start()
    try:
        assert wait_until(lambda: (tmp_path / "healed").exists() or not runner.is_alive(), 240)
        broker.start()
        runner.join(240)
        proc = done["proc"]
        log = proc.stderr
        assert proc.returncode == 0, log[-4000:]
        result = json.loads(out.read_text())
        assert wait_until(lambda: {m["msg_id"] for m in consumer.unique()} >= set(result["produced"]), 15)
    finally:
        consumer.stop()
    assert "Traceback" not in log and "cannot rollback" not in log, log[-4000:]
    assert result["frames"] == result["total"], "scoring went on while the disk was broken"
    during = result["during"]["outbox"]
    assert during["disk_error"] and during["in_memory"] >= 2, during
    assert result["during"]["cameras"]["cam"]["state_error"], "the state snapshot's failure is in the stats too"
    assert log.count("cannot write (") == 1, "the disk fault is said once, with the path and free space"
    assert f"outbox {tmp_path / 'state' / 'outbox.sqlite'}: cannot write" in log and "MB free" in log
    assert log.count("cannot write the state snapshot") == 1
    assert "writable again" in log
    after = result["after"]["outbox"]
    assert after["disk_error"] is None and after["dropped"] == 0 and after["in_memory"] == 0
    assert result["code"] == 0 and result["depth_at_exit"] == 0, result["lines"]
    assert len(result["produced"]) >= 2


@pytest.mark.slow
def test_a_read_only_state_dir_at_start_is_one_line_naming_it(daemon_bundle, anomaly_clip, tmp_path):
    state = tmp_path / "state"
    cfg = tmp_path / "device.yaml"
    cfg.write_text(json.dumps({"device_id": "box1", "state": {"dir": str(state)},
                               "cameras": [{"name": "cam", "source": str(anomaly_clip), "bundle": str(daemon_bundle)}]}))
    proc = _in_tmpfs(state, "1m", [sys.executable, "-m", "cli", "run", "--config", str(cfg)], mode="ro")
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stderr.strip().splitlines() == [
        f"error: state dir {state} is not writable (Read-only file system); the outbox, model state and stats live "
        "there: point state.dir (or --state-dir) at a writable folder"], proc.stderr


def test_memory_for_waiting_rows_is_bounded_and_what_it_drops_is_counted(tmp_path, caplog):
    box = Outbox(tmp_path / "outbox.sqlite", memory_limit=250, retry_s=0)
    other = sqlite3.connect(str(tmp_path / "outbox.sqlite"), timeout=0)
    other.execute("BEGIN EXCLUSIVE")  # the disk refuses every write from here on
    box._db.execute("PRAGMA busy_timeout=0")
    caplog.set_level(logging.ERROR)
    for i in range(5):
        box.put("t/a", bytes([i]) * 100, event={"id": f"e{i}", "camera": "cam", "type": "start"})
    assert box.dropped == 3 and box.in_memory == 2
    assert [r.payload[0] for r in box.after(0)] == [3, 4], "the newest wait, the oldest went"
    assert caplog.text.count("memory for waiting alerts is full") == 1
    assert len(box.open_events("cam")) == 5, "a dropped message's event is still known to be open"
    other.rollback()
    other.close()
    box.maintain()
    assert box.depth() == 2 and box.disk_error is None
    box.close()
