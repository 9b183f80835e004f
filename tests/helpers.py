"""Small utilities shared by the tests."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def wait_for_port(host: str, port: int, timeout: float = 10.0) -> bool:
    """True once ``host:port`` accepts TCP connections, False after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.02)
    return False


def wait_until(predicate, timeout: float = 5.0, interval: float = 0.02) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` s pass."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


REPO = __import__("pathlib").Path(__file__).resolve().parents[1]
VTEST = REPO.parent / "shared" / "data" / "vtest.avi"


def need_vtest():
    import pytest

    if not VTEST.exists():
        pytest.skip(f"{VTEST} not present (the shared data folder sits beside the repo)")
    return VTEST


def write_clip(path, frames, fps: float = 10.0):
    """Write BGR frames as an MJPG .avi (decodable by every OpenCV build)."""
    import cv2

    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    for f in frames:
        writer.write(f)
    writer.release()
    return path


def flying_block_clip(path, normal_frames, anomaly_at: int, length: int = 20):
    """Normal footage with a bright block racing across it: an anomaly any trained model must flag."""
    frames = [f.copy() for f in normal_frames]
    h, w = frames[0].shape[:2]
    for k in range(length):
        i = anomaly_at + k
        if i >= len(frames):
            break
        x = int((k / length) * (w - 120))
        frames[i][h // 3 : h // 3 + 90, x : x + 120] = (255, 255, 255)
    return write_clip(path, frames), (anomaly_at, min(anomaly_at + length, len(frames)))


def find_mosquitto() -> str | None:
    """The mosquitto binary (PATH, then Debian's and a source build's sbin), or None."""
    for candidate in ("mosquitto", "/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"):
        found = shutil.which(candidate)
        if found:
            return found
    return None


@contextlib.contextmanager
def local_mosquitto(binary: str):
    """A throwaway mosquitto on a free loopback port, for the benchmarks; yields the port."""
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        conf = Path(tmp) / "mosquitto.conf"
        conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
        proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            if not wait_for_port("127.0.0.1", port, 10):
                raise RuntimeError(f"mosquitto did not accept connections on port {port}")
            yield port
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def step_maps(model, frames) -> list:
    """Error maps of a model's deployed step run over ``frames`` (T×B×C×H×W) from zero state, one per frame."""
    import torch

    step = model.step_module()
    state = [torch.zeros(1, *s.shape) for s in model.state_specs()]
    maps = []
    for x in frames:
        _, error_map, *state = step(x, *state)
        maps.append(error_map)
    return maps
