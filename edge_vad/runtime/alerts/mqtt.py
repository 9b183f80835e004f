"""Publish anomaly events over MQTT.

Topic layout (``prefix`` defaults to ``edge-vad``)::

    PREFIX/DEVICE/CAMERA/events   JSON event messages, QoS 1, not retained
    PREFIX/DEVICE/available       "online" / "offline", QoS 1, retained

Delivery guarantees of :class:`AlertPublisher`
----------------------------------------------
Events are delivered at least once and in the order they were published, even
across broker restarts, as long as the process keeps running.

paho-mqtt 2.x on its own keeps QoS-1 messages that are published while the
connection is down (``publish()`` returns ``MQTT_ERR_NO_CONN`` but the message
stays in the client's outgoing queue and is sent after the next CONNACK), so
nothing is dropped. Two details make it unsuitable to rely on for ordering and
accounting, though:

* a message published right after the reconnect (between CONNACK and paho's
  resend of the old queue, or while CONNECT is still in flight) goes out
  *before* the older queued ones;
* ``MQTTMessageInfo.wait_for_publish()`` raises ``RuntimeError`` for such a
  message because its ``rc`` stays ``MQTT_ERR_NO_CONN`` even after delivery.

So the publisher keeps its own backlog while disconnected, takes back paho's
unacknowledged messages on reconnect (``drop_out_messages``), and re-sends
them followed by the backlog, in the original order. Acknowledgements are
counted from ``on_publish`` (which paho calls on PUBACK for QoS 1).

It speaks MQTT 3.1.1, where a broker acknowledges a publish its ACL refused:
such a loss is invisible here. The daemon's durable publisher
(:mod:`edge_vad.runtime.alerts.delivery`) speaks MQTT 5 and keeps refused messages.
"""

from __future__ import annotations

import json
import logging
import math
import re
import ssl
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from typing import NamedTuple
from urllib.parse import unquote, urlsplit

from edge_vad.errors import EdgeVadError

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "edge-vad"
ONLINE = "online"
OFFLINE = "offline"
_SCHEMES = {"mqtt": False, "tcp": False, "mqtts": True, "ssl": True}
_DEFAULT_PORTS = {False: 1883, True: 8883}


# ---------------------------------------------------------------- addresses


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = None

    def __str__(self) -> str:
        # Never print the password: this string ends up in logs and errors.
        return f"{self.host}:{self.port}"


def parse_broker_url(url: str) -> BrokerAddress:
    """``mqtt://[user:pass@]host[:port]``, ``mqtts://...`` or bare ``host[:port]``."""
    if not isinstance(url, str) or not url.strip():
        raise EdgeVadError(f"invalid MQTT broker URL {url!r}: expected mqtt://host:port")
    text = url.strip()
    typo = re.match(r"^([A-Za-z]+)(//|:/(?!/))", text)
    if typo and typo.group(1).lower() in _SCHEMES:
        raise EdgeVadError(f"invalid MQTT broker URL {url!r}: write '{typo.group(1)}://' (colon and two slashes), "
                           f"e.g. {typo.group(1)}://{text[typo.end():] or 'HOST'}")
    if "://" not in text:
        text = "mqtt://" + text
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise EdgeVadError(f"invalid MQTT broker URL {url!r}: {exc}") from exc
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES:
        raise EdgeVadError(
            f"invalid MQTT broker URL {url!r}: scheme must be one of {', '.join(sorted(_SCHEMES))}"
        )
    if not parts.hostname:
        raise EdgeVadError(f"invalid MQTT broker URL {url!r}: no host name")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise EdgeVadError(f"invalid MQTT broker URL {url!r}: unexpected path or query after the host")
    tls = _SCHEMES[scheme]
    if port == 0:
        raise EdgeVadError(f"invalid MQTT broker URL {url!r}: port 0")
    return BrokerAddress(
        host=parts.hostname,
        port=port or _DEFAULT_PORTS[tls],
        tls=tls,
        username=unquote(parts.username) if parts.username is not None else None,
        password=unquote(parts.password) if parts.password is not None else None,
    )


# ------------------------------------------------------------------- topics


class Topics(NamedTuple):
    events: str
    available: str


def _check_segment(what: str, value: str, wildcard_ok: bool) -> str:
    value = str(value)
    if not value or "/" in value or "#" in value or ("+" in value and not (wildcard_ok and value == "+")):
        allowed = " ('+' alone matches any)" if wildcard_ok else ""
        raise EdgeVadError(f"invalid {what} {value!r} for an MQTT topic: it must be non-empty "
                           f"without '/', '#' or '+'{allowed}")
    return value


def topics(prefix: str, device: str, camera: str | None = None, *, wildcards: bool = True) -> Topics:
    """Topic names for one device (and camera; ``None`` means any camera)."""
    prefix = str(prefix).strip("/")
    if not prefix or "#" in prefix or "+" in prefix:
        raise EdgeVadError(f"invalid MQTT topic prefix {prefix!r}: it must be non-empty without '#' or '+'")
    device = _check_segment("device id", device, wildcards)
    camera = _check_segment("camera name", "+" if camera is None else camera, wildcards or camera is None)
    return Topics(events=f"{prefix}/{device}/{camera}/events", available=f"{prefix}/{device}/available")


def _json_safe(value):
    # JSON has no NaN/Infinity; a subscriber in another language would choke on them.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalar
        return _json_safe(value.item())
    return value


def _mqtt():
    import paho.mqtt.client as mqtt

    return mqtt


def _new_client(address: BrokerAddress, client_id: str, connect_timeout: float):
    mqtt = _mqtt()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True,
                         protocol=mqtt.MQTTv311)
    if address.username is not None:
        client.username_pw_set(address.username, address.password)
    if address.tls:
        client.tls_set()
    client.connect_timeout = connect_timeout
    return client


# ---------------------------------------------------------------- publisher


@dataclass
class _Outgoing:
    topic: str
    payload: bytes
    retain: bool
    is_event: bool


class AlertPublisher:
    """Publishes event dicts from :class:`~edge_vad.runtime.alerts.events.EventTracker`.

    ``published`` counts events handed to :meth:`publish_event`,
    ``acknowledged`` those the broker confirmed (PUBACK); ``reconnects`` counts
    successful re-connections after a lost connection.
    """

    def __init__(
        self,
        broker_url: str,
        device_id: str,
        prefix: str = DEFAULT_PREFIX,
        client_id: str | None = None,
        connect_timeout: float = 10.0,
        keepalive: int = 30,
        reconnect_delay: tuple[int, int] = (1, 30),
    ):
        self.address = parse_broker_url(broker_url)
        self.device_id = _check_segment("device id", device_id, wildcard_ok=False)
        self.prefix = prefix
        self.availability_topic = topics(prefix, device_id, wildcards=False).available
        self.client_id = client_id or f"edge-vad-{device_id}-{uuid.uuid4().hex[:8]}"
        self.connect_timeout = float(connect_timeout)
        self.keepalive = int(keepalive)
        self.reconnect_delay = reconnect_delay
        self.published = 0
        self.acknowledged = 0
        self.reconnects = 0

        self._client = None
        self._closed = False
        self._connected = False
        self._ever_connected = False
        self._connack = threading.Event()
        self._refused: str | None = None
        # Lock order: _lock may be held while calling into paho; _ack_lock is
        # taken inside paho's own locks (on_publish), so it must never be held
        # while calling into paho or while waiting for _lock.
        self._lock = threading.Lock()
        self._backlog: deque[_Outgoing] = deque()
        self._ack_lock = threading.Condition()
        self._in_flight: dict[int, _Outgoing] = {}
        self._acked_before_registered: set[int] = set()

    # -- lifecycle

    def connect(self) -> "AlertPublisher":
        if self._client is not None:
            return self
        if self._closed:
            raise EdgeVadError("this AlertPublisher was closed; create a new one")
        client = _new_client(self.address, self.client_id, self.connect_timeout)
        # The broker publishes this for us if we vanish without DISCONNECT
        # (crash, power loss, network cut), so dashboards see the device go away.
        client.will_set(self.availability_topic, OFFLINE, qos=1, retain=True)
        client.reconnect_delay_set(*self.reconnect_delay)
        # Unlimited in-flight window: ordering is handled here, and paho's
        # in-flight counter is not adjusted by drop_out_messages(), so a window
        # could slowly shrink to nothing after many reconnects.
        client.max_inflight_messages_set(0)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish

        deadline = time.monotonic() + self.connect_timeout
        try:
            client.connect(self.address.host, self.address.port, keepalive=self.keepalive)
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise EdgeVadError(f"cannot reach MQTT broker at {self.address}: {_reason(exc)}") from exc
        self._client = client
        client.loop_start()
        if not self._connack.wait(max(0.0, deadline - time.monotonic())):
            self._abort()
            raise EdgeVadError(f"cannot reach MQTT broker at {self.address}: "
                               f"no answer to CONNECT within {self.connect_timeout:g} s")
        if self._refused is not None:
            self._abort()
            raise EdgeVadError(f"MQTT broker at {self.address} refused the connection: {self._refused} "
                               "(check the username and password in the broker URL)")
        log.info("connected to MQTT broker at %s as %s", self.address, self.client_id)
        return self

    def close(self, timeout: float = 10.0) -> None:
        """Wait (up to ``timeout`` s) for every event to be acknowledged, mark
        the device offline and disconnect."""
        if self._client is None or self._closed:
            self._closed = True
            return
        deadline = time.monotonic() + timeout
        self.flush(timeout)
        client = self._client
        with self._lock:
            self._closed = True
            connected = self._connected
            if connected:
                self._send(_Outgoing(self.availability_topic, OFFLINE.encode(), retain=True, is_event=False))
        if connected:
            # The retained "offline" replaces "online"; give it a moment even
            # if the events used up the whole timeout.
            self._wait_until(lambda: not self._in_flight, max(deadline - time.monotonic(), 1.0))
        lost = self.pending
        if lost:
            log.warning("closing the MQTT publisher with %d event(s) not acknowledged by %s", lost, self.address)
        client.disconnect()
        client.drop_out_messages()  # lets the network thread exit even with nothing acknowledged
        client.loop_stop()
        self._connected = False

    def __enter__(self) -> "AlertPublisher":
        return self.connect()

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- publishing

    def publish_event(self, event: dict) -> None:
        if self._client is None:
            raise EdgeVadError("AlertPublisher is not connected; call connect() or use it in a with block")
        if self._closed:
            raise EdgeVadError("cannot publish: this AlertPublisher is closed")
        camera = event.get("camera")
        topic = topics(self.prefix, self.device_id, camera, wildcards=False).events
        payload = json.dumps(_json_safe(event), separators=(",", ":")).encode()
        message = _Outgoing(topic, payload, retain=False, is_event=True)
        with self._lock:
            self.published += 1
            if self._connected:
                self._send(message)
            else:
                self._backlog.append(message)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until all published events are acknowledged; False on timeout."""
        return self._wait_until(lambda: self.pending == 0, timeout)

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def pending(self) -> int:
        """Events published but not yet acknowledged by the broker."""
        return self.published - self.acknowledged

    def stats(self) -> dict:
        return {"published": self.published, "acknowledged": self.acknowledged,
                "pending": self.pending, "reconnects": self.reconnects, "connected": self._connected}

    # -- internals

    def _send(self, message: _Outgoing) -> None:
        # Caller holds _lock. If the connection has just dropped, paho keeps
        # the message (rc NO_CONN) and _on_connect takes it back in order.
        info = self._client.publish(message.topic, message.payload, qos=1, retain=message.retain)
        with self._ack_lock:
            if info.mid in self._acked_before_registered:
                self._acked_before_registered.discard(info.mid)
                self._count_ack(message)
            else:
                self._in_flight[info.mid] = message

    def _count_ack(self, message: _Outgoing) -> None:
        if message.is_event:
            self.acknowledged += 1
        self._ack_lock.notify_all()

    def _wait_until(self, predicate, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._ack_lock:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                # Short slices: the backlog can drain without an ack notification.
                self._ack_lock.wait(min(remaining, 0.05))
        return True

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self._refused = str(reason_code)
            log.warning("MQTT broker at %s refused the connection: %s", self.address, reason_code)
            self._connack.set()
            return
        with self._lock:
            if self._closed:
                return
            # Everything paho still holds was sent before anything in the
            # backlog, so re-send it first; status messages are superseded by
            # the fresh "online" below.
            reclaimed = client.drop_out_messages()
            with self._ack_lock:
                resend = [self._in_flight.pop(m.mid) for m in reclaimed if m.mid in self._in_flight]
            queue = [m for m in resend if m.is_event] + list(self._backlog)
            self._backlog.clear()
            self._send(_Outgoing(self.availability_topic, ONLINE.encode(), retain=True, is_event=False))
            for message in queue:
                self._send(message)
            self._connected = True
        if self._ever_connected:
            self.reconnects += 1
            log.warning("reconnected to MQTT broker at %s; re-sent %d event(s)", self.address, len(queue))
        self._ever_connected = True
        self._connack.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        # No _lock here: paho may call this while holding its own message lock.
        self._connected = False
        if not self._closed:
            log.warning("lost connection to MQTT broker at %s (%s); will retry", self.address, reason_code)

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        with self._ack_lock:
            message = self._in_flight.pop(mid, None)
            if message is None:
                # PUBACK raced ahead of _send() recording the mid.
                self._acked_before_registered.add(mid)
            else:
                self._count_ack(message)

    def _abort(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.disconnect()
            client.loop_stop()


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError) or type(exc).__name__ == "timeout":
        return "connection timed out"
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
