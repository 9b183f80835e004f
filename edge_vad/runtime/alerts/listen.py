"""Watch the events that devices publish, one readable line per message.

Backs ``edge-vad listen`` and lets tests and the demo observe a running
publisher from a background :class:`Listener`.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from datetime import datetime, timezone
from typing import Callable, TextIO

from edge_vad.errors import EdgeVadError
from edge_vad.runtime.alerts.mqtt import DEFAULT_PREFIX, _new_client, _reason, parse_broker_url, topics

log = logging.getLogger(__name__)


@dataclass
class Received:
    topic: str
    payload: dict | str
    retained: bool
    received_at: float = field(default_factory=time.time)


def _fmt_score(value) -> str:
    return f"{value:.3f}" if isinstance(value, (int, float)) else "  -  "


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
    when = event.get("end_time") if kind == "end" else event.get("start_time")
    where = f"{event.get('device') or '?'}/{event.get('camera') or '?'}"
    line = (f"{when or '-':<24}  {where:<24}  {kind.upper():<6}  score {_fmt_score(event.get('score'))}"
            f"  peak {_fmt_score(event.get('peak_score'))}  frame {event.get('frame_index', '-')}"
            f"  id {str(event.get('id', '?'))[:8]}")
    if kind == "end":
        line += _duration(event)
    return line


def _format_availability(device: str, status: str, retained: bool, received_at: float) -> str:
    when = datetime.fromtimestamp(received_at, tz=timezone.utc).isoformat(timespec="milliseconds")
    note = "  (retained)" if retained else ""
    return f"{when.replace('+00:00', 'Z'):<24}  {device:<24}  {status.upper()}{note}"


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
    ):
        self.address = parse_broker_url(broker_url)
        self.events_topic = topics(prefix, device, camera).events
        # Snapshots sit beside the events topic: PREFIX/DEVICE/CAMERA/snapshot.
        self.snapshot_topic = self.events_topic.rsplit("/", 1)[0] + "/snapshot"
        self.snapshot_dir = Path(snapshot_dir) if snapshot_dir is not None else None
        self.snapshots: list[Path] = []
        # The daemon delivers at least once; a copy re-sent after a lost PUBACK
        # carries the same msg_id and is dropped here.
        self.dedup = dedup
        self.duplicates = 0
        self._seen: set[str] = set()
        self.availability_topic = topics(prefix, "+").available
        self.on_event = on_event
        self.max_events = max_events
        self.stop_on_end = stop_on_end
        self.out = out
        self.connect_timeout = float(connect_timeout)
        self.client_id = client_id or f"edge-vad-listen-{uuid.uuid4().hex[:8]}"
        self.received: list[Received] = []
        self.availability: dict[str, str] = {}
        self._events: list[dict] = []
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
            self._handle(message.topic, message.payload, bool(message.retain))
        except Exception:  # noqa: BLE001 - a bad message or callback must not kill the network thread
            log.exception("error while handling MQTT message on %s", message.topic)

    def _save_snapshot(self, topic: str, payload: bytes) -> None:
        from edge_vad.runtime.alerts.snapshots import event_id_of

        parts = topic.split("/")
        device, camera = parts[-3], parts[-2]
        event_id = event_id_of(payload) or datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f")
        self.snapshot_dir.mkdir(parents=True, exist_ok=True)
        path = self.snapshot_dir / f"{device}_{camera}_{event_id}.jpg"
        path.write_bytes(payload)
        with self._cond:
            self.snapshots.append(path)
            self._cond.notify_all()
        self._print(f"{'':<24}  {device + '/' + camera:<24}  SNAPSHOT saved {path}")

    def _handle(self, topic: str, payload: bytes, retained: bool) -> None:
        if topic.endswith("/snapshot"):
            if self.snapshot_dir is not None:
                self._save_snapshot(topic, payload)
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
            self._print(f"ignored message on {topic}: {exc}")
            return
        with self._cond:
            if self._done:
                return
            msg_id = event.get("msg_id")
            if self.dedup and msg_id is not None:
                if msg_id in self._seen:
                    self.duplicates += 1
                    return
                self._seen.add(msg_id)
            self._events.append(event)
            self.received.append(Received(topic, event, retained))
            if (self.max_events is not None and len(self._events) >= self.max_events) or (
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
