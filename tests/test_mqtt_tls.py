"""TLS and passwords against a real mosquitto that speaks only TLS."""

from __future__ import annotations

import json
import logging
import ssl
import threading

import paho.mqtt.client as mqtt
import pytest

from helpers import wait_until


def _tls_consumer(broker, topic: str):
    got, ready = [], threading.Event()
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="tls-consumer")
    c.tls_set(ca_certs=str(broker.ca_file), cert_reqs=ssl.CERT_REQUIRED)
    c.username_pw_set("edge", "right-horse-battery")
    c.on_connect = lambda cl, *a: cl.subscribe(topic, 1)
    c.on_subscribe = lambda *a: ready.set()
    c.on_message = lambda cl, u, m: got.append(json.loads(m.payload))
    c.connect(broker.host, broker.port)
    c.loop_start()
    assert ready.wait(10), "the test's own TLS consumer could not subscribe"
    return c, got


def _publisher(tmp_path, broker, ca_file, password: str):
    from edge_vad.runtime.daemon.config import BrokerConfig
    from edge_vad.runtime.alerts.delivery import DurablePublisher
    from edge_vad.runtime.alerts.outbox import Outbox

    pw = tmp_path / "pw"
    pw.write_text(password + "\n")
    cfg = BrokerConfig(host=broker.host, port=broker.port, username="edge", password_file=pw,
                       tls={"ca_file": ca_file}, reconnect_min_s=1, reconnect_max_s=1)
    return DurablePublisher(cfg, "t/box1/available", Outbox(tmp_path / "outbox.sqlite"))


def test_alerts_go_out_over_tls_with_a_password(mosquitto_tls, tmp_path):
    consumer, got = _tls_consumer(mosquitto_tls, "t/box1/cam/events")
    publisher = _publisher(tmp_path, mosquitto_tls, mosquitto_tls.ca_file, "right-horse-battery")
    try:
        for i in range(5):
            publisher.enqueue("t/box1/cam/events", json.dumps({"n": i}).encode())
        publisher.start()
        assert publisher.drain(15), publisher.last_error
        assert wait_until(lambda: len(got) == 5, 10)
        assert [m["n"] for m in got] == list(range(5))
    finally:
        publisher.stop()
        consumer.disconnect()
        consumer.loop_stop()


@pytest.mark.parametrize("case", ["untrusted certificate", "wrong password"])
def test_a_refused_tls_connection_is_reported_retried_and_alerts_wait(mosquitto_tls, tmp_path, caplog, case):
    caplog.set_level(logging.INFO)
    ca = mosquitto_tls.rogue_ca if case == "untrusted certificate" else mosquitto_tls.ca_file
    publisher = _publisher(tmp_path, mosquitto_tls, ca, "right-horse-battery" if case != "wrong password" else "nope-123")
    try:
        publisher.enqueue("t/box1/cam/events", b'{"n": 0}')
        publisher.start()
        expected = "TLS certificate rejected" if case == "untrusted certificate" else "not authori"
        assert wait_until(lambda: expected.lower() in (publisher.last_error or "").lower(), 10), publisher.last_error
        assert wait_until(lambda: publisher.failed_attempts >= 2, 10), "retried with backoff"
        assert caplog.text.count("retrying") == 1, "said once, not once per attempt"
        assert not publisher.connected and publisher.outbox.depth() == 1, "the alert waits on disk"
        assert "nope-123" not in caplog.text
        if case == "untrusted certificate":
            assert "broker.tls.ca_file" in caplog.text
    finally:
        publisher.stop(drain_timeout=0)
