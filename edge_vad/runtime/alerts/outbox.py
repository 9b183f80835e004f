"""The durable outbox: every alert is on disk before anyone tries to send it.

A row leaves the table only when the broker has acknowledged it (PUBACK), so a
broker outage, a power cut or a SIGKILL never loses an alert; the sender
re-sends from the oldest row after every (re)connection, so delivery stays in
order. The price is that a message whose PUBACK was lost is sent twice; each
payload carries a unique ``msg_id`` so consumers can drop the copy.

The table also remembers which events are open (started, not yet ended), so a
daemon that was killed mid-event can end them when it comes back.

Disk faults are survived, not hidden:

* a damaged file (0 bytes, truncated, garbage) is moved aside, never deleted,
  and a fresh outbox starts; the log and :attr:`Outbox.moved_aside` name it;
* while the disk refuses writes (full, read-only, I/O errors) new rows wait in
  memory, up to ``memory_limit`` bytes, and the disk is retried every
  ``retry_s``; rows are numbered before they reach the disk, so they keep their
  place in the delivery order when they get there. :attr:`Outbox.disk_error`
  says what is wrong while it lasts.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from edge_vad.errors import EdgeVadError

log = logging.getLogger("edge_vad.outbox")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    retain INTEGER NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS open_events (
    id TEXT PRIMARY KEY,
    camera TEXT NOT NULL,
    message TEXT NOT NULL
);
"""

#: SQLite primary result codes that mean "the file is not a sound database" (not: "the disk refuses")
_DAMAGED = {11, 26}  # SQLITE_CORRUPT, SQLITE_NOTADB
#: a state file holds alert payloads and snapshots: the service user only
FILE_MODE = 0o600


@dataclass(frozen=True)
class Row:
    seq: int
    topic: str
    payload: bytes
    retain: bool


@dataclass
class _Pending:
    row: Row
    event: dict | None
    created: float
    acked: bool = False  # delivered before the disk took it: only its open/ended bookkeeping is left


def _is_damage(exc: sqlite3.DatabaseError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)  # Python >= 3.11
    if code is not None:
        return (code & 0xFF) in _DAMAGED
    text = str(exc).lower()
    return "malformed" in text or "not a database" in text


def _free_space(path: Path) -> str:
    try:
        return f"{shutil.disk_usage(path).free / 1e6:.1f} MB free"
    except OSError as exc:
        return f"free space unknown: {exc.strerror or exc}"


def check_writable(directory: Path) -> None:
    """One clear line, naming the folder, when state cannot be written there at all."""
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o750)
        probe = directory / f".write-test-{os.getpid()}"
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        os.close(fd)
        probe.unlink()
    except OSError as exc:
        raise EdgeVadError(f"state dir {directory} is not writable ({exc.strerror or exc}); the outbox, model "
                           "state and stats live there: point state.dir (or --state-dir) at a writable folder"
                           ) from None


class Outbox:
    def __init__(self, path: str | Path, memory_limit: int = 64 << 20, retry_s: float = 5.0):
        self.path = Path(path)
        self.memory_limit = memory_limit
        self.retry_s = retry_s
        check_writable(self.path.parent)
        self.moved_aside: Path | None = None
        self.disk_error: str | None = None
        self.dropped = 0  # rows lost because the disk refused them and memory was full
        self.enqueued = 0
        self.removed = 0
        self._memory: list[_Pending] = []  # rows not on disk yet, in sequence order
        self._memory_bytes = 0
        self._unremoved: set[int] = set()  # acknowledged, but the DELETE did not reach the disk
        self._last_try = 0.0
        self._logged: set[str] = set()
        # One connection shared by the threads under a lock: SQLite serialises
        # writers anyway, and the volumes here are a few rows a second.
        self._lock = threading.Lock()
        self._db = self._open()
        row = self._db.execute("SELECT MAX(seq) FROM outbox").fetchone()
        seq = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").fetchone()
        self._next_seq = max(row[0] or 0, seq[0] if seq else 0) + 1

    # -- opening

    def _connect(self) -> sqlite3.Connection:
        if not self.path.exists():
            # SQLite gives its -wal and -shm files the mode of the database file.
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, FILE_MODE))
        db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        try:
            # WAL + synchronous=FULL: a committed row survives power loss, and
            # readers do not block the writer.
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            verdict = db.execute("PRAGMA quick_check").fetchone()[0]
            if verdict != "ok":
                raise sqlite3.DatabaseError(f"database disk image is malformed ({verdict})")
            db.executescript(_SCHEMA)
        except BaseException:
            db.close()
            raise
        return db

    def _open(self) -> sqlite3.Connection:
        why = None
        if self.path.exists() and self.path.stat().st_size == 0:
            # Our outbox is never empty once created (the schema is in it): 0 bytes is a truncated file.
            why = "the file is 0 bytes (truncated)"
        else:
            try:
                return self._connect()
            except sqlite3.DatabaseError as exc:
                if not _is_damage(exc):
                    raise EdgeVadError(f"cannot open the outbox {self.path}: {exc} ({_free_space(self.path.parent)})"
                                       ) from None
                why = str(exc)
        self.moved_aside = self._move_aside()
        log.error("outbox %s is damaged (%s): moved it aside to %s (kept for inspection) and started a fresh "
                  "outbox; messages it held were not delivered by this run", self.path, why, self.moved_aside)
        return self._connect()

    def _move_aside(self) -> Path:
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        target = self.path.with_name(f"{self.path.name}.damaged-{stamp}")
        n = 1
        while target.exists():
            n += 1
            target = self.path.with_name(f"{self.path.name}.damaged-{stamp}-{n}")
        try:
            for suffix in ("-wal", "-shm", ""):  # the WAL may hold the rows the main file lost
                src = Path(f"{self.path}{suffix}")
                if src.exists():
                    os.replace(src, f"{target}{suffix}")
        except OSError as exc:
            raise EdgeVadError(f"outbox {self.path} is damaged and cannot be moved aside "
                               f"({exc.strerror or exc}); move it away by hand") from None
        return target

    # -- writing

    def put(self, topic: str, payload: bytes, retain: bool = False, event: dict | None = None) -> int:
        """Store a message; with ``event``, also track whether it is open (one transaction).

        Never raises for a disk fault: the row waits in memory and goes to disk
        when the disk takes writes again.
        """
        with self._lock:
            seq = self._next_seq
            self._next_seq += 1
            item = _Pending(Row(seq, topic, bytes(payload), bool(retain)), event, time.time())
            self._memory.append(item)
            self._memory_bytes += len(item.row.payload)
            self._flush(force=not self.disk_error)
            self.enqueued += 1
            return seq

    def maintain(self) -> None:
        """Retry the disk (rate-limited): rows waiting in memory, deletions that did not land."""
        with self._lock:
            if self._memory or self._unremoved:
                self._flush(force=False)

    def _flush(self, force: bool) -> None:
        # Caller holds _lock.
        now = time.monotonic()
        if not force and now - self._last_try < self.retry_s:
            self._bound_memory()
            return
        self._last_try = now
        try:
            self._db.execute("BEGIN IMMEDIATE")
            for item in self._memory:
                r = item.row
                if not item.acked:
                    self._db.execute("INSERT INTO outbox (seq, topic, payload, retain, created) "
                                     "VALUES (?, ?, ?, ?, ?)",
                                     (r.seq, r.topic, sqlite3.Binary(r.payload), int(r.retain), item.created))
                self._track(item.event)
            if self._unremoved:
                self._db.executemany("DELETE FROM outbox WHERE seq = ?", [(s,) for s in self._unremoved])
            self._db.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            self._rollback()
            self._disk_failed(exc)
            self._bound_memory()
            return
        if self.disk_error is not None:
            log.warning("outbox %s writable again: %d message(s) written from memory", self.path, self.in_memory)
            self.disk_error = None
        self.removed += len(self._unremoved)
        self._memory.clear()
        self._memory_bytes = 0
        self._unremoved.clear()

    def _track(self, event: dict | None) -> None:
        if event is None or not event.get("id"):
            return
        if event.get("type") == "end":
            self._db.execute("DELETE FROM open_events WHERE id = ?", (event["id"],))
        else:
            self._db.execute("INSERT OR REPLACE INTO open_events (id, camera, message) VALUES (?, ?, ?)",
                             (event["id"], event.get("camera", ""), json.dumps(event)))

    def _rollback(self) -> None:
        # A failed COMMIT has already rolled back on its own; a second ROLLBACK would raise.
        if self._db.in_transaction:
            try:
                self._db.execute("ROLLBACK")
            except sqlite3.DatabaseError:
                pass

    def _disk_failed(self, exc: sqlite3.DatabaseError) -> None:
        self.disk_error = f"{exc} ({_free_space(self.path.parent)})"
        if str(exc) not in self._logged:
            self._logged.add(str(exc))
            log.error("outbox %s: cannot write (%s, %s); alerts wait in memory (up to %d MB) and the disk is "
                      "retried every %g s", self.path, exc, _free_space(self.path.parent), self.memory_limit >> 20,
                      self.retry_s)

    def _bound_memory(self) -> None:
        while self._memory_bytes > self.memory_limit:
            lost = next(m for m in self._memory if not m.acked)
            self._release(lost)  # its open/ended bookkeeping stays; the payload goes
            if self.dropped == 0:
                log.error("outbox %s: the disk still refuses writes and the %d MB of memory for waiting alerts "
                          "is full; dropping the oldest (counted in stats outbox.dropped)", self.path,
                          self.memory_limit >> 20)
            self.dropped += 1

    def _release(self, item: _Pending) -> None:
        self._memory_bytes -= len(item.row.payload)
        item.acked = True
        item.row = Row(item.row.seq, item.row.topic, b"", item.row.retain)

    # -- reading

    def after(self, seq: int, limit: int = 64) -> list[Row]:
        """Rows with a sequence number above ``seq``, oldest first (on disk or waiting in memory)."""
        with self._lock:
            try:
                rows = self._db.execute(
                    "SELECT seq, topic, payload, retain FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?",
                    (seq, limit + len(self._unremoved))).fetchall()
            except sqlite3.DatabaseError as exc:
                self._disk_failed(exc)
                rows = []
            out = [Row(r[0], r[1], bytes(r[2]), bool(r[3])) for r in rows if r[0] not in self._unremoved]
            out += [m.row for m in self._memory if m.row.seq > seq and not m.acked]
        out.sort(key=lambda r: r.seq)
        return out[:limit]

    def remove(self, seqs) -> None:
        seqs = set(seqs)
        if not seqs:
            return
        with self._lock:
            for m in self._memory:
                if m.row.seq in seqs and not m.acked:
                    self._release(m)
                    self.removed += 1
            on_disk = seqs - {m.row.seq for m in self._memory}
            if not on_disk:
                return
            try:
                # One transaction for the batch: in autocommit mode every row would cost its own fsync.
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany("DELETE FROM outbox WHERE seq = ?", [(s,) for s in on_disk])
                self._db.execute("COMMIT")
                self.removed += len(on_disk)
            except sqlite3.DatabaseError as exc:
                self._rollback()
                self._disk_failed(exc)
                self._unremoved |= on_disk

    def depth(self) -> int:
        with self._lock:
            try:
                stored = int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
            except sqlite3.DatabaseError:
                stored = len(self._unremoved)
            return stored - len(self._unremoved) + self.in_memory

    @property
    def in_memory(self) -> int:
        """Undelivered rows that have not reached the disk."""
        return sum(not m.acked for m in self._memory)

    def oldest_age(self) -> float | None:
        with self._lock:
            try:
                row = self._db.execute("SELECT MIN(created) FROM outbox").fetchone()
            except sqlite3.DatabaseError:
                row = (None,)
            waiting = next((m.created for m in self._memory if not m.acked), None)
            times = [t for t in (row[0], waiting) if t is not None]
        return time.time() - min(times) if times else None

    def open_events(self, camera: str | None = None) -> list[dict]:
        with self._lock:
            rows = self._db.execute("SELECT message FROM open_events").fetchall()
            events = {e["id"]: e for e in (json.loads(r[0]) for r in rows)}
            for m in self._memory:
                if m.event is not None and m.event.get("id"):
                    if m.event.get("type") == "end":
                        events.pop(m.event["id"], None)
                    else:
                        events[m.event["id"]] = m.event
        return [e for e in events.values() if camera is None or e.get("camera") == camera]

    def close(self) -> int:
        """Close the database; returns how many rows never reached the disk (and are lost with this process)."""
        with self._lock:
            if self._memory or self._unremoved:
                self._flush(force=True)
            lost = self.in_memory
            if lost:
                log.error("outbox %s: %d message(s) never reached the disk (%s) and are lost with this process",
                          self.path, lost, self.disk_error)
            self._db.close()
            return lost
