"""Watch the events that devices publish, one readable line per message.

Backs ``edge-vad listen`` and lets tests and the demo observe a running
publisher from a background :class:`Listener`.

Anyone who can publish on the broker can reach this process, so nothing that
arrives is trusted: printed fields are escaped (no terminal escape sequences,
no forged lines), payloads and snapshots have size limits, the number of saved
snapshots and their bytes are capped, de-duplication and the kept history have
a bound, and snapshot file names are built only from validated ids.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import threading
import time
import uuid
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from pathlib import Path
from datetime import datetime, timezone
from typing import Callable, TextIO

from edge_vad.errors import EdgeVadError
from edge_vad.runtime.alerts.mqtt import DEFAULT_PREFIX, _new_client, _reason, parse_broker_url, topics

log = logging.getLogger(__name__)

MAX_EVENT_BYTES = 64 << 10  # an event message is well under 1 KiB
MAX_SNAPSHOT_BYTES = 8 << 20  # a JPEG of a 4K frame is a few MB
_NAME = re.compile(r"^(?!\.{1,2}$)[A-Za-z0-9_.-]{1,64}$")  # device and camera names, as the daemon allows them
_EVENT_ID = re.compile(r"^[0-9a-f]{32}$")
# C0/C1 controls, DEL, and the Unicode characters that move or reorder text on a terminal.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def printable(value, limit: int = 120) -> str:
    """``value`` as text a terminal shows as-is: controls escaped, long values cut."""
    text = _UNPRINTABLE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), str(value))
    return text if len(text) <= limit else text[:limit] + "…"


@dataclass
class Received:
    topic: str
    payload: dict | str
    retained: bool
    received_at: float = field(default_factory=time.time)


def _fmt_score(value) -> str:
    return f"{value:.3f}" if isinstance(value, (int, float)) and not isinstance(value, bool) else "  -  "


def _duration(event: dict) -> str:
    try:
        start = datetime.fromisoformat(event["start_time"].replace("Z", "+00:00"))
        end = datetime.fromisoformat(event["end_time"].replace("Z", "+00:00"))
    except (KeyError, AttributeError, TypeError, ValueError):
        return ""
    return f"  lasted {(end - start).total_seconds():.1f} s"


def format_event(event: dict) -> str:
    """One line: when, where, what, how bad, which event.

    The time is the event's own: its start for ``start``/``update``, its end
    for ``end`` (a backlog re-sent after an outage arrives late, so arrival
    time would mislead).
    """
    kind = str(event.get("type", "?"))
    when = printable(event.get("end_time") if kind == "end" else event.get("start_time"), 40)
    where = f"{printable(event.get('device') or '?', 64)}/{printable(event.get('camera') or '?', 64)}"
    line = (f"{when or '-':<24}  {where:<24}  {printable(kind.upper(), 12):<6}  score {_fmt_score(event.get('score'))}"
            f"  peak {_fmt_score(event.get('peak_score'))}  frame {printable(event.get('frame_index', '-'), 20)}"
            f"  id {printable(event.get('id', '?'), 8)[:8]}")
    if kind == "end":
        line += _duration(event)
    return line


def _format_availability(device: str, status: str, retained: bool, received_at: float) -> str:
    when = datetime.fromtimestamp(received_at, tz=timezone.utc).isoformat(timespec="milliseconds")
    note = "  (retained)" if retained else ""
    return f"{when.replace('+00:00', 'Z'):<24}  {printable(device, 64):<24}  {printable(status.upper(), 40)}{note}"


class Listener:
    """Subscribes in a background thread and records what arrives.

    :meth:`start` returns once the broker has confirmed the subscriptions, so
    anything published afterwards is seen.
    """

    def __init__(
        self,
        broker_url: str,
        prefix: str = DEFAULT_PREFIX,
        device: str = "+",
        camera: str = "+",
        on_event: Callable[[dict], None] | None = None,
        max_events: int | None = None,
        stop_on_end: bool = False,
        out: TextIO | None = sys.stdout,
        connect_timeout: float = 10.0,
        client_id: str | None = None,
        snapshot_dir: str | Path | None = None,
        dedup: bool = True,
        dedup_size: int = 10_000,
        keep: int = 10_000,
        max_snapshots: int = 1000,
        max_snapshot_total: int = 512 << 20,
    ):
        self.address = parse_broker_url(broker_url)
        self.events_topic = topics(prefix, device, camera).events
        # Snapshots sit beside the events topic: PREFIX/DEVICE/CAMERA/snapshot.
        self.snapshot_topic = self.events_topic.rsplit("/", 1)[0] + "/snapshot"
        self.snapshot_dir = Path(snapshot_dir) if snapshot_dir is not None else None
        self.snapshots: deque[Path] = deque(maxlen=keep)
        self.max_snapshots = max_snapshots  # files this listener writes, at most
        self.max_snapshot_total = max_snapshot_total  # bytes it writes, at most
        self.snapshots_saved = 0
        self.snapshot_bytes = 0
        # The daemon delivers at least once; a copy re-sent after a lost PUBACK
        # carries the same msg_id and is dropped here. A re-sent copy follows its original
        # within the sender's window, so a bounded memory of recent ids is enough.
        self.dedup = dedup
        self.duplicates = 0
        self.dedup_size = dedup_size
        self._seen: OrderedDict[str, None] = OrderedDict()
        self.ignored = 0  # messages refused (too big, malformed, bad names)
        self._complained: set[str] = set()
        self.availability_topic = topics(prefix, "+").available
        self.on_event = on_event
        self.max_events = max_events
        self.stop_on_end = stop_on_end
        self.out = out
        self.connect_timeout = float(connect_timeout)
        self.client_id = client_id or f"edge-vad-listen-{uuid.uuid4().hex[:8]}"
        self.received: deque[Received] = deque(maxlen=keep)
        self.availability: dict[str, str] = {}
        self._events: deque[dict] = deque(maxlen=keep)
        self.count = 0  # distinct events received (the kept history is bounded)
        self._client = None
        self._cond = threading.Condition()
        self._subscribed = threading.Event()
        self._refused: str | None = None
        self._done = False
        self._print_lock = threading.Lock()

    @property
    def events(self) -> list[dict]:
        with self._cond:
            return list(self._events)

    @property
    def done(self) -> bool:
        """max_events reached, or (stop_on_end) an ``end`` arrived."""
        return self._done

    def start(self) -> "Listener":
        if self._client is not None:
            return self
        client = _new_client(self.address, self.client_id, self.connect_timeout)
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        client.reconnect_delay_set(1, 10)
        deadline = time.monotonic() + self.connect_timeout
        try:
            client.connect(self.address.host, self.address.port, keepalive=30)
        except (OSError, ValueError) as exc:
            raise EdgeVadError(f"cannot reach MQTT broker at {self.address}: {_reason(exc)}") from exc
        self._client = client
        client.loop_start()
        if not self._subscribed.wait(max(0.0, deadline - time.monotonic())) or self._refused:
            self.stop()
            reason = (f"refused the connection: {self._refused}" if self._refused
                      else f"no answer within {self.connect_timeout:g} s")
            raise EdgeVadError(f"cannot listen on MQTT broker at {self.address}: {reason}")
        return self

    def stop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.disconnect()
            client.loop_stop()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until :attr:`done` or ``timeout`` seconds; returns :attr:`done`."""
        return self.wait_for(lambda: self._done, timeout)

    def wait_for(self, predicate: Callable[[], bool], timeout: float | None = None) -> bool:
        """Block until ``predicate()`` (checked on every message) holds or ``timeout`` passes."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not predicate():
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                # Bounded waits keep Ctrl-C responsive in the CLI.
                self._cond.wait(0.5 if remaining is None else min(remaining, 0.5))
        return True

    def __enter__(self) -> "Listener":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # -- paho callbacks (network thread)

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self._refused = str(reason_code)
            self._subscribed.set()
            return
        # Subscribing in on_connect renews the subscriptions after a reconnect
        # (clean session: the broker forgot them).
        subs = [(self.events_topic, 1), (self.availability_topic, 1)]
        if self.snapshot_dir is not None:
            subs.append((self.snapshot_topic, 1))
        client.subscribe(subs)

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        failed = [str(rc) for rc in reason_codes if rc.is_failure]
        if failed:
            log.warning("broker refused subscription: %s", ", ".join(failed))
        self._subscribed.set()

    def _on_message(self, client, userdata, message) -> None:
        try:
            topic = message.topic
        except UnicodeDecodeError:
            self._ignore("a message whose topic is not UTF-8", "topic")
            return
        try:
            self._handle(topic, message.payload, bool(message.retain))
        except Exception as exc:  # noqa: BLE001 - a bad message or callback must not kill the network thread
            if f"error:{type(exc).__name__}" not in self._complained:
                log.exception("error while handling MQTT message on %s", printable(topic))
            self._ignore(f"message on {topic}: {type(exc).__name__}: {exc}", f"error:{type(exc).__name__}")

    def _ignore(self, why: str, key: str) -> None:
        """Count a refused message; say so once per kind of refusal (a flood must not flood the terminal)."""
        self.ignored += 1
        if key not in self._complained:
            self._complained.add(key)
            self._print(f"ignored: {printable(why, 200)} (further ones are counted, not printed)")

    def _save_snapshot(self, topic: str, payload: bytes) -> None:
        from edge_vad.runtime.alerts.snapshots import event_id_of

        parts = topic.split("/")
        device, camera = parts[-3], parts[-2]
        if not (_NAME.match(device) and _NAME.match(camera)):
            self._ignore(f"snapshot on {topic}: device or camera is not a valid name", "snapshot-name")
            return
        if len(payload) > MAX_SNAPSHOT_BYTES or payload[:2] != b"\xff\xd8":
            self._ignore(f"snapshot on {topic}: not a JPEG of at most {MAX_SNAPSHOT_BYTES >> 20} MB "
                         f"({len(payload)} bytes)", "snapshot-size")
            return
        if (self.snapshots_saved >= self.max_snapshots
                or self.snapshot_bytes + len(payload) > self.max_snapshot_total):
            self._ignore(f"snapshot on {topic}: this listener has saved {self.snapshots_saved} snapshots "
                         f"({self.snapshot_bytes / 1e6:.0f} MB), its limit; not saving more", "snapshot-cap")
            return
        event_id = event_id_of(payload)
        if event_id is None or not _EVENT_ID.match(event_id):
            # The comment is the publisher's text: use it in a file name only if it is an id we make.
            event_id = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f")
        self.snapshot_dir.mkdir(parents=True, exist_ok=True)
        path = self.snapshot_dir / f"{device}_{camera}_{event_id}.jpg"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
        self.snapshots_saved += 1
        self.snapshot_bytes += len(payload)
        with self._cond:
            self.snapshots.append(path)
            self._cond.notify_all()
        self._print(f"{'':<24}  {device + '/' + camera:<24}  SNAPSHOT saved {path}")

    def _handle(self, topic: str, payload: bytes, retained: bool) -> None:
        if topic.endswith("/snapshot"):
            if self.snapshot_dir is not None:
                self._save_snapshot(topic, payload)
            return
        if len(payload) > MAX_EVENT_BYTES:
            self._ignore(f"message on {topic}: {len(payload)} bytes, more than an event's {MAX_EVENT_BYTES}",
                         "size")
            return
        text = payload.decode("utf-8", errors="replace")
        if topic.endswith("/available"):
            device = topic.split("/")[-2]
            record = Received(topic, text, retained)
            with self._cond:
                self.availability[device] = text
                self.received.append(record)
                self._cond.notify_all()
            self._print(_format_availability(device, text, retained, record.received_at))
            return
        try:
            event = json.loads(text)
            if not isinstance(event, dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            self._ignore(f"message on {topic}: {exc}", "json")
            return
        with self._cond:
            if self._done:
                return
            msg_id = event.get("msg_id")
            if self.dedup and isinstance(msg_id, str):
                if msg_id in self._seen:
                    self._seen.move_to_end(msg_id)
                    self.duplicates += 1
                    return
                self._seen[msg_id] = None
                if len(self._seen) > self.dedup_size:
                    self._seen.popitem(last=False)
            self._events.append(event)
            self.received.append(Received(topic, event, retained))
            self.count += 1
            if (self.max_events is not None and self.count >= self.max_events) or (
                    self.stop_on_end and event.get("type") == "end"):
                self._done = True
            self._cond.notify_all()
        self._print(format_event(event))
        if self.on_event is not None:
            self.on_event(event)

    def _print(self, line: str) -> None:
        if self.out is None:
            return
        with self._print_lock:
            print(line, file=self.out, flush=True)


def listen(
    broker_url: str,
    prefix: str = DEFAULT_PREFIX,
    device: str = "+",
    camera: str = "+",
    on_event: Callable[[dict], None] | None = None,
    max_events: int | None = None,
    timeout: float | None = None,
    stop_on_end: bool = False,
    out: TextIO | None = sys.stdout,
    snapshot_dir: str | Path | None = None,
) -> list[dict]:
    """Print events as they arrive; return them when max_events is reached,
    ``timeout`` seconds pass, (``stop_on_end``) the first ``end`` arrives, or
    the user presses Ctrl-C."""
    listener = Listener(broker_url, prefix=prefix, device=device, camera=camera, on_event=on_event,
                        max_events=max_events, stop_on_end=stop_on_end, out=out, snapshot_dir=snapshot_dir)
    listener.start()
    try:
        listener.wait(timeout)
    except KeyboardInterrupt:
        pass
    finally:
        listener.stop()
    return listener.events
