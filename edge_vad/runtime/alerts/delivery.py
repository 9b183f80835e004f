"""Deliver the outbox to the broker, in order, whatever the network does.

One sender thread walks the outbox oldest-first and publishes each row at QoS 1;
a row is deleted when its PUBACK arrives. After every (re)connection the walk
restarts from the oldest row still stored, so rows sent on a dead connection
are sent again and nothing overtakes an older message. paho's own re-send
queue is emptied on connect (``drop_out_messages``) because it would replay
old messages after, not before, what the sender has already queued.

MQTT 5, because in MQTT 3.1.1 a broker that refuses a publish (an ACL that
does not let this user write the topic) acknowledges it all the same, and the
row would be deleted as delivered. In MQTT 5 the PUBACK carries a reason code;
one of 0x80 or above (mosquitto: 0x87 "Not authorized") means *not delivered*:
the row stays in the outbox, the refusal is logged once per topic and reason
and counted (``denied``), and the row is offered again on the next connection
and every ``retry_denied_s``. A broker that speaks only MQTT 3.1.1 is used with
3.1.1, with a warning that refusals cannot be seen there.

The daemon starts even while the broker is down or refuses it (wrong password,
bad certificate): the reason is logged and exposed in the stats, the client
keeps retrying with backoff, and alerts wait on disk.
"""

from __future__ import annotations

import logging
import ssl
import sys
import threading
import time
import uuid
from collections import deque

from edge_vad.runtime.alerts.outbox import Outbox
from edge_vad.runtime.daemon.config import BrokerConfig

log = logging.getLogger("edge_vad.delivery")

ONLINE, OFFLINE = b"online", b"offline"
_UNSUPPORTED_PROTOCOL = 0x84  # CONNACK reason: the broker does not speak MQTT 5


class DurablePublisher:
    def __init__(self, broker: BrokerConfig, availability_topic: str, outbox: Outbox, window: int = 32,
                 retry_denied_s: float = 60.0):
        self.broker = broker
        self.availability_topic = availability_topic
        self.outbox = outbox
        self.window = window  # un-acknowledged messages on the wire at once
        self.retry_denied_s = retry_denied_s
        self.client_id = broker.client_id or f"edge-vad-{uuid.uuid4().hex[:10]}"
        self.connected = False
        self.reconnects = 0
        self.acknowledged = 0
        self.denied_total = 0  # PUBACKs with a failure reason code, since start
        self.denied: dict[int, str] = {}  # seq -> "topic: reason" of rows the broker refused, kept in the outbox
        self.last_error: str | None = None
        self.failed_attempts = 0  # connection attempts refused or failed, since start
        self.protocol = "5"
        self._gen = 0  # bumped by every successful CONNACK
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._acks: deque[tuple[int, int, object]] = deque()  # (generation, mid, reason) from the network thread
        self._stop = threading.Event()
        self._downgrade = threading.Event()
        self._refusals_logged: set[tuple[str, str]] = set()
        self._receive_maximum: int | None = None
        self._client = None
        self._thread: threading.Thread | None = None

    # -- lifecycle

    def start(self) -> "DurablePublisher":
        self._client = self._new_client()
        self._thread = threading.Thread(target=self._run, name="edge-vad-sender", daemon=True)
        self._thread.start()
        return self

    def _new_client(self):
        import paho.mqtt.client as mqtt

        v5 = self.protocol == "5"
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id,
                             protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311, **({} if v5 else {"clean_session": True}))
        if self.broker.username:
            password = self.broker.password()
            client.username_pw_set(self.broker.username, password.get_secret_value() if password else None)
        if self.broker.tls is not None:
            tls = self.broker.tls
            client.tls_set(ca_certs=str(tls.ca_file) if tls.ca_file else None,
                           certfile=str(tls.cert_file) if tls.cert_file else None,
                           keyfile=str(tls.key_file) if tls.key_file else None,
                           cert_reqs=ssl.CERT_REQUIRED)
            if tls.insecure:
                client.tls_insecure_set(True)
        client.will_set(self.availability_topic, OFFLINE, qos=1, retain=True)
        client.reconnect_delay_set(max(1, int(self.broker.reconnect_min_s)), max(1, int(self.broker.reconnect_max_s)))
        # The sender bounds the window itself; paho's limit would hold messages
        # in its own queue, where a reconnect reorders them.
        client.max_inflight_messages_set(0)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        # connect_async: an unreachable broker at boot is an outage like any other, not a crash.
        # clean_start: the sender re-sends from the outbox itself, the broker must not replay a session.
        client.connect_async(self.broker.host, self.broker.port, keepalive=self.broker.keepalive,
                             **({"clean_start": True} if v5 else {}))
        client.loop_start()
        return client

    def enqueue(self, topic: str, payload: bytes, retain: bool = False, event: dict | None = None) -> int:
        seq = self.outbox.put(topic, payload, retain, event)
        self._wake.set()
        return seq

    def publish_volatile(self, topic: str, payload: bytes, retain: bool = False, qos: int = 0) -> bool:
        """Best-effort messages (scores, stats): sent only while connected, never stored."""
        client = self._client
        if not self.connected or client is None:
            return False
        client.publish(topic, payload, qos=qos, retain=retain)
        return True

    def settled(self) -> bool:
        """Nothing left to deliver but what the broker refused."""
        return self.outbox.depth() <= len(self.denied)

    def drain(self, timeout: float) -> bool:
        """Wait until every row is acknowledged (or refused by the broker); False on timeout.

        Waits while disconnected too: the broker may come back within ``timeout``.
        """
        deadline = time.monotonic() + timeout
        while not self.settled():
            if time.monotonic() >= deadline:
                return False
            self._wake.set()
            time.sleep(0.02)
        return True

    def stop(self, drain_timeout: float = 5.0) -> None:
        if self._client is None:
            return
        self.drain(drain_timeout)
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(5)
        client, self._client = self._client, None
        if self.connected:
            info = client.publish(self.availability_topic, OFFLINE, qos=1, retain=True)
            try:
                info.wait_for_publish(2)
            except (RuntimeError, ValueError):
                pass
        left = self.outbox.depth()
        if left:
            refused = f", {len(self.denied)} of them refused by the broker" if self.denied else ""
            log.warning("stopping with %d message(s) not delivered%s; they stay in %s and go out on the next start",
                        left, refused, self.outbox.path)
        client.disconnect()
        client.loop_stop()
        self.connected = False

    # -- sender thread

    def _run(self) -> None:
        inflight: dict[int, int] = {}  # mid -> seq, for the current connection
        gen = -1
        cursor = 0
        next_retry = time.monotonic() + self.retry_denied_s
        while not self._stop.is_set():
            self._wake.wait(0.25)
            self._wake.clear()
            if self._downgrade.is_set():
                self._use_mqtt311()
            self.outbox.maintain()
            done = []
            while self._acks:
                g, mid, reason = self._acks.popleft()
                if g != gen or mid not in inflight:
                    if reason is not None:
                        self._refused(None, reason)  # availability and other unstored messages
                    continue
                seq = inflight.pop(mid)
                if reason is None:
                    done.append(seq)
                    self.denied.pop(seq, None)
                else:
                    self.denied[seq] = self._refused(seq, reason)
            if done:
                self.outbox.remove(done)
                self.acknowledged += len(done)
            with self._lock:
                if not self.connected or self._client is None:
                    continue
                if gen != self._gen:
                    # A new connection: whatever was in flight may or may not have
                    # arrived; start again from the oldest stored row.
                    gen, cursor = self._gen, 0
                    inflight.clear()
                    self._client.publish(self.availability_topic, ONLINE, qos=1, retain=True)
                elif self.denied and time.monotonic() >= next_retry:
                    # The ACL may have been fixed: offer the refused rows again, oldest first.
                    cursor = 0
                    next_retry = time.monotonic() + self.retry_denied_s
                window = min(self.window, self._receive_maximum or self.window)
                room = window - len(inflight)
                if room <= 0:
                    continue
                sent = set(inflight.values())
                for row in self.outbox.after(cursor, room + len(sent)):
                    cursor = row.seq
                    if row.seq in sent:
                        continue
                    info = self._client.publish(row.topic, row.payload, qos=1, retain=row.retain)
                    inflight[info.mid] = row.seq
                    room -= 1
                    if room <= 0:
                        break

    def _refused(self, seq: int | None, reason) -> str:
        self.denied_total += 1
        topic = self._topic_of(seq)
        key = (topic, str(reason))
        if key not in self._refusals_logged:
            self._refusals_logged.add(key)
            hint = (" (the broker's ACL does not let user "
                    f"{self.broker.username!r} write this topic: check that device_id is the MQTT username)"
                    if getattr(reason, "value", None) == 0x87 else "")
            kept = "; the message stays in the outbox and is offered again" if seq is not None else ""
            log.error("broker %s refused a publish to %s: %s%s%s", self.broker, topic, reason, hint, kept)
        return f"{topic}: {reason}"

    def _topic_of(self, seq: int | None) -> str:
        if seq is None:
            return self.availability_topic
        rows = self.outbox.after(seq - 1, 1)
        return rows[0].topic if rows and rows[0].seq == seq else f"row {seq}"

    def _use_mqtt311(self) -> None:
        self._downgrade.clear()
        with self._lock:
            old, self._client = self._client, None
            self.protocol = "3.1.1"
        if old is not None:
            old.disconnect()
            old.loop_stop()
        log.warning("broker %s does not speak MQTT 5; using MQTT 3.1.1, where a publish the broker refuses "
                    "(ACL) is still acknowledged, so such a loss cannot be detected", self.broker)
        with self._lock:
            self._client = self._new_client()

    # -- paho callbacks (network thread)

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            if getattr(reason_code, "value", None) == _UNSUPPORTED_PROTOCOL and self.protocol == "5":
                self._downgrade.set()
                self._wake.set()
                return
            self.failed_attempts += 1
            # Bad credentials or not authorised: say so once per distinct reason, keep retrying.
            reason = f"broker {self.broker} refused the connection: {reason_code}"
            if reason != self.last_error:
                hint = " (check broker.username and the password file/variable)" if "authori" in str(
                    reason_code).lower() or "password" in str(reason_code).lower() else ""
                log.error("%s%s; retrying", reason, hint)
            self.last_error = reason
            return
        self._receive_maximum = getattr(properties, "ReceiveMaximum", None) if properties is not None else None
        with self._lock:
            client.drop_out_messages()
            self._gen += 1
            if self._gen > 1:
                self.reconnects += 1
            self.connected = True
        if self.last_error or self._gen > 1:
            log.warning("connected to MQTT broker %s (connection %d); re-sending %d stored message(s)",
                        self.broker, self._gen, self.outbox.depth())
        else:
            log.info("connected to MQTT broker %s as %s (MQTT %s)", self.broker, self.client_id, self.protocol)
        self.last_error = None
        self._wake.set()

    def _on_connect_fail(self, client, userdata) -> None:
        # paho calls this from inside its ``except OSError`` block, so the
        # exception (refused, unreachable, certificate rejected) is still current.
        reason = f"cannot reach MQTT broker {self.broker}: {_describe(sys.exc_info()[1])}"
        self.failed_attempts += 1
        if reason != self.last_error:
            log.error("%s; retrying", reason)
        self.last_error = reason

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        was = self.connected
        self.connected = False
        if was and not self._stop.is_set():
            log.warning("lost MQTT broker %s (%s); alerts wait in the outbox", self.broker, reason_code)

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        failed = reason_code is not None and getattr(reason_code, "is_failure", False)
        self._acks.append((self._gen, mid, reason_code if failed else None))
        self._wake.set()


def _describe(exc: BaseException | None) -> str:
    """What went wrong with a connection attempt, in words an operator can act on."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (f"TLS certificate rejected ({exc.verify_message}); check broker.tls.ca_file and that the "
                "broker's certificate names this host")
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake failed ({exc.reason or exc}); check broker.tls and that the port speaks TLS"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (broker down, or wrong port)"
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc}"
    return "down, unreachable, or TLS handshake failed"
