"""Shared bits of the daemon tests: configs, frame readers, subscribers."""

from __future__ import annotations

import json
import threading
import time
import uuid

import cv2
import numpy as np
import paho.mqtt.client as mqtt
import yaml

from edge_vad.runtime.daemon.config import parse_config


def make_config(tmp_path, mq, cameras: list[dict], **top) -> "DeviceConfig":  # noqa: F821
    data = {"device_id": "box1", "prefix": "t", "broker": {"host": mq.host, "port": mq.port},
            "state": {"dir": str(tmp_path / "state")}, "cameras": cameras, **top}
    if isinstance(top.get("broker"), dict):
        data["broker"] = {"host": mq.host, "port": mq.port, **top["broker"]}
    return parse_config(yaml.safe_dump(data), tmp_path / "device.yaml")


def write_config(tmp_path, mq, cameras: list[dict], **top):
    data = {"device_id": "box1", "prefix": "t", "broker": {"host": mq.host, "port": mq.port},
            "state": {"dir": str(tmp_path / "state")}, "cameras": cameras, **top}
    if isinstance(top.get("broker"), dict):
        data["broker"] = {"host": mq.host, "port": mq.port, **top["broker"]}
    path = tmp_path / "device.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


class ManualClock:
    """Simulated time for the daemon: it moves when a test says so (``advance``, e.g. a slow device's
    step) or when the scheduler idles (``wait`` jumps to the next frame due). After every move it
    waits until each thread sleeping on it has done what the new time allows and sleeps again (or
    has finished), so what the scheduler finds next depends on the simulated time alone, not on how
    busy the machine is or how the OS scheduled the threads."""

    SETTLE_TIMEOUT = 60.0  # real seconds a woken thread may take to go back to sleep

    def __init__(self, start: float = 1_700_000_000.0):
        self.now = float(start)
        self._cond = threading.Condition()
        self._sleepers: dict[threading.Thread, float | None] = {}  # deadline, None while awake

    def time(self) -> float:
        return self.now

    monotonic = perf_counter = time

    def sleep(self, seconds: float, stop: threading.Event) -> bool:
        me = threading.current_thread()
        with self._cond:
            deadline = self.now + seconds
            self._sleepers[me] = deadline
            self._cond.notify_all()
            while self.now < deadline and not stop.is_set():
                self._cond.wait(0.05)
            self._sleepers[me] = None
            self._cond.notify_all()
        return stop.is_set()

    def advance(self, seconds: float) -> None:
        with self._cond:
            self.now += seconds
            self._cond.notify_all()
            self._settle()

    def wait(self, event: threading.Event, timeout: float) -> bool:
        if event.is_set():
            return True
        with self._cond:
            due = [d for t, d in self._sleepers.items() if t.is_alive() and d is not None and d > self.now]
            if due:
                self.now += min([timeout] + [d - self.now for d in due])
                self._cond.notify_all()
                self._settle()
        if not event.is_set():
            event.wait(0.01)  # nobody sleeps on the clock (a thread is starting, or finishing): let it
        return event.is_set()

    def _settle(self) -> None:
        end = time.monotonic() + self.SETTLE_TIMEOUT
        while not all(not t.is_alive() or (d is not None and d > self.now) for t, d in self._sleepers.items()):
            if time.monotonic() > end:
                raise AssertionError("a thread on the simulated clock did not go back to sleep")
            self._cond.wait(0.005)


class FrameReader:
    """An in-process camera: hands out given frames, optionally at a fixed rate."""

    def __init__(self, frames, fps: float | None = None, clock_fps: float | None = None):
        self.frames = list(frames)
        # clock_fps: frames carry a recording's timestamps (n / clock_fps) instead of the wall clock.
        self.fps = clock_fps
        self.interval = 1.0 / fps if fps else 0.0
        self.i = 0
        self._next = None

    def read(self):
        if self.i >= len(self.frames):
            return False, None
        if self.interval:
            now = time.monotonic()
            self._next = now if self._next is None else self._next + self.interval
            if self._next > now:
                time.sleep(self._next - now)
        frame = self.frames[self.i]
        self.i += 1
        return True, frame

    def release(self):
        pass


class Subscriber:
    """A consumer with a persistent session: the broker queues its QoS 1
    messages while it (or the broker) is away, as a real alert consumer would."""

    def __init__(self, broker, topic: str = "t/#"):
        self.broker = broker
        self.topic = topic
        self.client_id = f"consumer-{uuid.uuid4().hex[:8]}"
        self.messages: list[dict] = []
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        self.client = None

    def start(self):
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id, clean_session=False)
        c.on_connect = lambda cl, u, f, rc, p: cl.subscribe(self.topic, 1)
        c.on_subscribe = lambda *a: self.subscribed.set()
        c.on_message = self._on_message
        c.reconnect_delay_set(1, 1)
        c.connect(self.broker.host, self.broker.port)
        c.loop_start()
        self.client = c
        assert self.subscribed.wait(5)
        return self

    def _on_message(self, client, userdata, msg):
        if msg.topic.endswith("/events"):
            with self.lock:
                self.messages.append(json.loads(msg.payload))

    def events(self) -> list[dict]:
        with self.lock:
            return list(self.messages)

    def unique(self) -> list[dict]:
        seen, out = set(), []
        for m in self.events():
            if m["msg_id"] not in seen:
                seen.add(m["msg_id"])
                out.append(m)
        return out

    def stop(self):
        if self.client is not None:
            self.client.disconnect()
            self.client.loop_stop()


def vtest_frames(start: int, stop: int) -> list[np.ndarray]:
    from helpers import need_vtest

    from edge_vad.data.frames import read_frames

    return [np.ascontiguousarray(f) for f in read_frames(need_vtest(), start, stop)]


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def jpeg_ok(data: bytes) -> bool:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) is not None
