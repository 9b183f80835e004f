"""MQTT publishing and listening against a real mosquitto, plus the embedded broker.

Every wait is bounded, so a broken broker or client fails a test instead of
hanging the run.
"""

from __future__ import annotations

import io
import json
import socket
import threading
import time

import paho.mqtt.client as mqtt
import pytest

from edge_vad.errors import EdgeVadError
from edge_vad.runtime.alerts.events import EventTracker
from edge_vad.runtime.alerts.listen import Listener, format_event, listen
from edge_vad.runtime.alerts.mqtt import AlertPublisher, BrokerAddress, parse_broker_url, topics
from helpers import free_port, wait_until

WAIT = 5.0
T0 = 1_700_000_000.0


def make_events(camera: str, device: str = "dev1", count_events: int = 2) -> list[dict]:
    tracker = EventTracker(camera, threshold=0.5, min_frames=2, end_frames=2, update_every=3, device=device)
    out: list[dict] = []
    scores = ([0.1] * 2 + [0.9] * 5 + [0.1] * 3) * count_events
    for index, score in enumerate(scores):
        out += tracker.update(index, T0 + index / 10, score)
    return out


def paho_client(client_id: str) -> mqtt.Client:
    return mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)


# ----------------------------------------------------------------- helpers


@pytest.mark.parametrize("url, expected", [
    ("mqtt://broker.local:1999", BrokerAddress("broker.local", 1999)),
    ("mqtt://broker.local", BrokerAddress("broker.local", 1883)),
    ("mqtts://broker.local", BrokerAddress("broker.local", 8883, tls=True)),
    ("mqtts://b:9000", BrokerAddress("b", 9000, tls=True)),
    ("mqtt://alice:s%40cret@10.0.0.2", BrokerAddress("10.0.0.2", 1883, username="alice", password="s@cret")),
    ("localhost:1884", BrokerAddress("localhost", 1884)),
    ("localhost", BrokerAddress("localhost", 1883)),
])
def test_parse_broker_url(url, expected):
    assert parse_broker_url(url) == expected


@pytest.mark.parametrize("url", ["", "http://host", "mqtt://host:notaport", "mqtt://:1883", "mqtt://h:99999",
                                 "mqtt://host/path"])
def test_parse_broker_url_rejects_malformed_urls(url):
    with pytest.raises(EdgeVadError) as info:
        parse_broker_url(url)
    assert repr(url) in str(info.value)


def test_broker_address_str_hides_password():
    assert str(parse_broker_url("mqtt://u:secret@h:1")) == "h:1"


def test_topics():
    assert topics("edge-vad", "dev1", "cam1") == ("edge-vad/dev1/cam1/events", "edge-vad/dev1/available")
    assert topics("site/a/", "+").events == "site/a/+/+/events"
    with pytest.raises(EdgeVadError):
        topics("edge-vad", "dev/1", "cam")
    with pytest.raises(EdgeVadError):
        topics("edge-vad", "dev1", "+", wildcards=False)


def test_format_event_is_one_readable_line():
    start, *_ = make_events("cam1")
    line = format_event(start)
    assert "\n" not in line
    assert "dev1/cam1" in line and "START" in line and start["id"][:8] in line
    assert start["start_time"] in line


# ------------------------------------------------------------- mosquitto


def test_events_arrive_in_order_with_topics_and_json(mosquitto):
    events = make_events("cam1") + make_events("cam2")
    printed = io.StringIO()
    with Listener(mosquitto.url, max_events=len(events), out=printed) as listener:
        with AlertPublisher(mosquitto.url, "dev1") as publisher:
            for event in events:
                publisher.publish_event(event)
            assert publisher.flush(WAIT)
            assert listener.wait(WAIT)
        assert publisher.published == publisher.acknowledged == len(events)
        assert publisher.pending == 0

    received = [r for r in listener.received if isinstance(r.payload, dict)]
    assert [r.payload for r in received] == events
    assert [r.topic for r in received] == [f"edge-vad/dev1/{e['camera']}/events" for e in events]
    assert not any(r.retained for r in received)
    lines = printed.getvalue().splitlines()
    assert sum("dev1/cam1" in line for line in lines) == sum(e["camera"] == "cam1" for e in events)
    assert any("ONLINE" in line for line in lines)


def test_listen_function_filters_by_camera_and_stops_on_end(mosquitto):
    result: list[dict] = []
    thread = threading.Thread(target=lambda: result.extend(
        listen(mosquitto.url, camera="cam2", stop_on_end=True, timeout=WAIT, out=None)))
    thread.start()
    with AlertPublisher(mosquitto.url, "dev1") as publisher:
        # listen() gives no readiness signal; wait for its subscription to exist.
        time.sleep(0.3)
        for event in make_events("cam1") + make_events("cam2"):
            publisher.publish_event(event)
    thread.join(WAIT + 1)
    assert not thread.is_alive()
    assert [e["camera"] for e in result] == ["cam2"] * len(result)
    assert [e["type"] for e in result][-1] == "end"
    assert [e["type"] for e in result].count("end") == 1


def test_availability_is_retained_online_then_offline_on_close(mosquitto):
    publisher = AlertPublisher(mosquitto.url, "dev1").connect()
    try:
        # Subscribing after the fact still shows the device as online.
        with Listener(mosquitto.url, out=None) as late:
            assert late.wait_for(lambda: late.availability.get("dev1") == "online", WAIT)
            assert late.received[0].retained
            publisher.close()
            assert late.wait_for(lambda: late.availability.get("dev1") == "offline", WAIT)
    finally:
        publisher.close()
    with Listener(mosquitto.url, out=None) as later:
        assert later.wait_for(lambda: later.availability.get("dev1") == "offline", WAIT)


def test_will_marks_device_offline_when_connection_dies_and_online_after_reconnect(mosquitto):
    with Listener(mosquitto.url, out=None) as listener:
        with AlertPublisher(mosquitto.url, "dev1", reconnect_delay=(1, 1)) as publisher:
            assert listener.wait_for(lambda: listener.availability.get("dev1") == "online", WAIT)
            # Cut the TCP connection under paho without an MQTT DISCONNECT, as
            # a crash or a network failure would.
            publisher._client.socket().shutdown(socket.SHUT_RDWR)
            statuses = lambda: [r.payload for r in listener.received if r.topic.endswith("/available")]  # noqa: E731
            assert listener.wait_for(lambda: statuses()[-1:] == ["offline"], WAIT)
            assert listener.wait_for(lambda: statuses()[-2:] == ["offline", "online"], WAIT)
            assert publisher.reconnects == 1
            publisher.publish_event(make_events("cam1")[0])
            assert publisher.flush(WAIT)
        # The clean close's "offline" travels through the broker like any message: wait for it.
        assert listener.wait_for(lambda: statuses() == ["online", "offline", "online", "offline"], WAIT), statuses()


def test_events_published_while_broker_is_down_are_delivered_after_restart(mosquitto):
    events = make_events("cam1", count_events=2)
    before, during = events[:2], events[2:]
    # A slow first retry leaves time to subscribe before the backlog is flushed.
    with AlertPublisher(mosquitto.url, "dev1", reconnect_delay=(2, 2)) as publisher:
        for event in before:
            publisher.publish_event(event)
        assert publisher.flush(WAIT)

        mosquitto.stop()
        publisher.publish_event(during[0])  # possibly before paho notices the loss
        assert wait_until(lambda: not publisher.connected, WAIT)
        for event in during[1:]:
            publisher.publish_event(event)
        assert publisher.pending == len(during)

        mosquitto.start()
        with Listener(mosquitto.url, max_events=len(during), out=None) as listener:
            assert listener.wait(3 * WAIT), f"got {len(listener.events)} of {len(during)}: {publisher.stats()}"
            assert publisher.flush(WAIT)
        assert listener.events == during
        assert publisher.reconnects == 1
        assert publisher.acknowledged == len(events)


def test_unreachable_broker_raises_user_error_with_address():
    port = free_port()
    started = time.monotonic()
    with pytest.raises(EdgeVadError, match=f"cannot reach MQTT broker at 127.0.0.1:{port}"):
        AlertPublisher(f"mqtt://127.0.0.1:{port}", "dev1", connect_timeout=2).connect()
    with pytest.raises(EdgeVadError, match=f"127.0.0.1:{port}"):
        Listener(f"mqtt://127.0.0.1:{port}", connect_timeout=2).start()
    assert time.monotonic() - started < 5


class _FakeBroker:
    """Accepts one TCP connection and answers CONNECT with ``reply`` (or nothing)."""

    def __init__(self, reply: bytes | None):
        self.reply = reply
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(WAIT)
        self.port = self.server.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        try:
            conn, _ = self.server.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(WAIT)
            try:
                conn.recv(1024)
                if self.reply is not None:
                    conn.sendall(self.reply)
                conn.recv(1024)  # hold the connection until the client gives up
            except OSError:
                pass

    def close(self):
        self.server.close()
        self.thread.join(WAIT)


def test_broker_that_never_answers_times_out():
    fake = _FakeBroker(reply=None)
    try:
        started = time.monotonic()
        with pytest.raises(EdgeVadError, match=f"cannot reach MQTT broker at 127.0.0.1:{fake.port}"):
            AlertPublisher(f"mqtt://127.0.0.1:{fake.port}", "dev1", connect_timeout=0.5).connect()
        assert time.monotonic() - started < 3
    finally:
        fake.close()


def test_refused_connack_says_so():
    fake = _FakeBroker(reply=bytes([0x20, 0x02, 0x00, 0x05]))  # CONNACK: not authorized
    try:
        with pytest.raises(EdgeVadError, match="refused the connection.*username and password"):
            AlertPublisher(f"mqtt://bob:wrong@127.0.0.1:{fake.port}", "dev1", connect_timeout=3).connect()
    finally:
        fake.close()


def test_publish_after_close_is_a_user_error(mosquitto):
    publisher = AlertPublisher(mosquitto.url, "dev1").connect()
    publisher.close()
    with pytest.raises(EdgeVadError):
        publisher.publish_event(make_events("cam1")[0])


# --------------------------------------------------------- embedded broker


def test_embedded_broker_round_trips_qos1_retained_and_will():
    pytest.importorskip("amqtt")
    from edge_vad.runtime.alerts.broker import EmbeddedBroker

    with EmbeddedBroker() as broker:
        assert broker.url == f"mqtt://127.0.0.1:{broker.port}" and broker.port > 0
        received: list[mqtt.MQTTMessage] = []
        publisher = paho_client("pub")
        publisher.will_set("t/status", "gone", qos=1, retain=True)
        publisher.connect("127.0.0.1", broker.port)
        publisher.loop_start()
        try:
            info = publisher.publish("t/status", "here", qos=1, retain=True)
            info.wait_for_publish(WAIT)
            assert info.is_published()  # PUBACK came back

            subscriber = paho_client("sub")
            subscriber.on_message = lambda c, u, m: received.append(m)
            subscriber.connect("127.0.0.1", broker.port)
            subscriber.loop_start()
            try:
                subscriber.subscribe([("t/#", 1)])
                assert wait_until(lambda: len(received) == 1, WAIT)
                assert (received[0].topic, received[0].payload, received[0].retain) == ("t/status", b"here", True)

                publisher.publish("t/data", "x", qos=1).wait_for_publish(WAIT)
                assert wait_until(lambda: len(received) == 2, WAIT)
                assert (received[1].topic, received[1].qos, received[1].retain) == ("t/data", 1, False)

                publisher.loop_stop()
                publisher.socket().close()  # dies without DISCONNECT
                assert wait_until(lambda: len(received) == 3, WAIT)
                assert (received[2].topic, received[2].payload) == ("t/status", b"gone")
            finally:
                subscriber.disconnect()
                subscriber.loop_stop()
        finally:
            publisher.loop_stop()
    assert not any(t.name == "edge-vad-broker" for t in threading.enumerate())


def test_embedded_broker_carries_publisher_events_to_listener():
    pytest.importorskip("amqtt")
    from edge_vad.runtime.alerts.broker import EmbeddedBroker

    events = make_events("cam1")
    with EmbeddedBroker() as broker:
        with Listener(broker.url, max_events=len(events), out=None) as listener:
            with AlertPublisher(broker.url, "dev1") as publisher:
                for event in events:
                    publisher.publish_event(event)
                assert listener.wait(WAIT)
            assert publisher.acknowledged == len(events)
            assert listener.wait_for(lambda: listener.availability.get("dev1") == "offline", WAIT)
        assert listener.events == events


def test_embedded_broker_without_amqtt_names_the_extra(monkeypatch):
    import sys

    from edge_vad.errors import MissingDependency
    from edge_vad.runtime.alerts.broker import EmbeddedBroker

    monkeypatch.setitem(sys.modules, "amqtt.broker", None)
    with pytest.raises(MissingDependency, match=r"the 'demo' extra\): pip install 'amqtt"):
        EmbeddedBroker().start()
