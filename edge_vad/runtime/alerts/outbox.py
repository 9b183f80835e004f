"""The durable outbox: every alert is on disk before anyone tries to send it.

A row leaves the table only when the broker has acknowledged it (PUBACK), so a
broker outage, a power cut or a SIGKILL never loses an alert; the sender
re-sends from the oldest row after every (re)connection, so delivery stays in
order. The price is that a message whose PUBACK was lost is sent twice; each
payload carries a unique ``msg_id`` so consumers can drop the copy.

The table also remembers which events are open (started, not yet ended), so a
daemon that was killed mid-event can end them when it comes back.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

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


@dataclass(frozen=True)
class Row:
    seq: int
    topic: str
    payload: bytes
    retain: bool


class Outbox:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # One connection shared by the threads under a lock: SQLite serialises
        # writers anyway, and the volumes here are a few rows a second.
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            # WAL + synchronous=FULL: a committed row survives power loss, and
            # readers do not block the writer.
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        self.enqueued = 0
        self.removed = 0

    def put(self, topic: str, payload: bytes, retain: bool = False, event: dict | None = None) -> int:
        """Store a message; with ``event``, also track whether it is open (one transaction)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                cur = self._db.execute(
                    "INSERT INTO outbox (topic, payload, retain, created) VALUES (?, ?, ?, ?)",
                    (topic, sqlite3.Binary(payload), int(retain), time.time()))
                if event is not None and event.get("id"):
                    if event.get("type") == "end":
                        self._db.execute("DELETE FROM open_events WHERE id = ?", (event["id"],))
                    else:
                        self._db.execute("INSERT OR REPLACE INTO open_events (id, camera, message) VALUES (?, ?, ?)",
                                         (event["id"], event.get("camera", ""), json.dumps(event)))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self.enqueued += 1
            return int(cur.lastrowid)

    def after(self, seq: int, limit: int = 64) -> list[Row]:
        """Rows with a sequence number above ``seq``, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, topic, payload, retain FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?",
                (seq, limit)).fetchall()
        return [Row(r[0], r[1], bytes(r[2]), bool(r[3])) for r in rows]

    def remove(self, seqs) -> None:
        seqs = list(seqs)
        if not seqs:
            return
        with self._lock:
            # One transaction for the batch: in autocommit mode every row would cost its own fsync.
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany("DELETE FROM outbox WHERE seq = ?", [(s,) for s in seqs])
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self.removed += len(seqs)

    def depth(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    def oldest_age(self) -> float | None:
        with self._lock:
            row = self._db.execute("SELECT MIN(created) FROM outbox").fetchone()
        return None if row[0] is None else time.time() - row[0]

    def open_events(self, camera: str | None = None) -> list[dict]:
        with self._lock:
            if camera is None:
                rows = self._db.execute("SELECT message FROM open_events").fetchall()
            else:
                rows = self._db.execute("SELECT message FROM open_events WHERE camera = ?", (camera,)).fetchall()
        return [json.loads(r[0]) for r in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()
