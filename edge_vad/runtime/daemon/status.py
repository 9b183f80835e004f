"""``edge-vad status``: the daemon's latest stats, from its state dir or the broker."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from edge_vad.errors import EdgeVadError


def read_stats(config=None, state_dir=None, broker: str | None = None, device: str | None = None,
               prefix: str = "edge-vad", timeout: float = 5.0) -> dict:
    if broker is not None:
        return _from_broker(broker, device, prefix, timeout)
    if config is not None:
        from edge_vad.runtime.daemon.config import load_config

        state_dir = load_config(config).state.dir
    if state_dir is None:
        raise EdgeVadError("give --config DEVICE.yaml, --state-dir DIR, or --broker URL --device ID")
    path = Path(state_dir) / "stats.json"
    if not path.exists():
        raise EdgeVadError(f"{path}: no stats yet (has the daemon run with this state dir?)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise EdgeVadError(f"{path}: unreadable stats ({exc})") from None


def _from_broker(url: str, device: str | None, prefix: str, timeout: float) -> dict:
    from edge_vad.runtime.alerts.mqtt import _new_client, parse_broker_url

    if not device:
        raise EdgeVadError("--broker needs --device (the device id whose stats to read)")
    address = parse_broker_url(url)
    got: dict = {}
    done = threading.Event()
    topic = f"{prefix.strip('/')}/{device}/stats"
    client = _new_client(address, f"edge-vad-status-{time.time_ns() % 10**8}", timeout)
    client.on_connect = lambda c, *a: c.subscribe(topic, 1)

    def on_message(c, u, message):
        got["stats"] = json.loads(message.payload)
        done.set()

    client.on_message = on_message
    try:
        client.connect(address.host, address.port)
    except OSError as exc:
        raise EdgeVadError(f"cannot reach MQTT broker at {address}: {exc}") from None
    client.loop_start()
    try:
        if not done.wait(timeout):
            raise EdgeVadError(f"no stats on {topic} at {address} within {timeout:g} s (is the device running?)")
    finally:
        client.disconnect()
        client.loop_stop()
    return got["stats"]


def _ms(v) -> str:
    return "-" if v is None else f"{v:.0f}"


def format_status(stats: dict) -> str:
    b, o = stats.get("broker", {}), stats.get("outbox", {})
    stopped = stats.get("state") == "stopped"
    if stopped:
        broker = "not connected (daemon stopped)"
    else:
        broker = "connected" if b.get("connected") else f"DISCONNECTED ({b.get('error') or 'retrying'})"
    head = "STOPPED" if stopped else "up"
    lines = [f"device {stats.get('device')}  at {stats.get('time')}  {head} {stats.get('uptime_s', 0):.0f} s",
             f"broker {broker}, {b.get('reconnects', 0)} reconnect(s); outbox {o.get('depth', 0)} waiting"
             + (f" (oldest {o['oldest_s']:.0f} s)" if o.get("oldest_s") else "")]
    if b.get("refused"):
        lines.append(f"  REFUSED by the broker: {b['refused']} message(s) kept ({b.get('refused_total', 0)} refusals): "
                     + "; ".join(b.get("refused_topics", [])))
    if o.get("disk_error"):
        lines.append(f"  STATE DISK: {o['disk_error']}; {o.get('in_memory', 0)} message(s) waiting in memory")
    if o.get("dropped"):
        lines.append(f"  LOST: {o['dropped']} message(s) dropped (disk refused them, memory bound reached)")
    if o.get("moved_aside"):
        lines.append(f"  damaged outbox moved aside to {o['moved_aside']}")
    for name, c in stats.get("cameras", {}).items():
        sk, lat = c.get("skipped", {}), c.get("latency_ms", {})
        cam = "stopped" if stopped else ("up" if c.get("camera_connected") else "DOWN")
        lines.append(
            f"  {name:<12} camera {cam}  {c.get('fps', 0):5.1f} fps  every {c.get('stride', 1)} frame(s)  "
            f"latency p50 {_ms(lat.get('p50'))} / p99 {_ms(lat.get('p99'))} ms (budget {_ms(c.get('budget_ms'))})  "
            f"late {c.get('late', 0)}  skipped rate {sk.get('rate', 0)} cadence {sk.get('cadence', 0)} "
            f"dropped {sk.get('dropped', 0)} corrupt {sk.get('corrupt', 0)}  still {c.get('held_still', 0)}  "
            f"events {c.get('events', 0)}  "
            f"gaps {c.get('gaps', 0)}  state age {c.get('state_age_s')} s")
        for key, label in (("source_error", "source"), ("state_error", "state snapshot"),
                           ("step_failures", "model step failures")):
            if c.get(key):
                lines.append(f"  {'':<12} {label}: {c[key]}")
    return "\n".join(lines)
