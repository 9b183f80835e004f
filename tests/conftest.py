"""Shared fixtures: a real mosquitto broker on a private loopback port."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

# The package is used from the checkout, installed or not.
_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from helpers import free_port, wait_for_port  # noqa: E402

_MOSQUITTO_CANDIDATES = ("mosquitto", "/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")
_INSTALL_HINT = "sudo apt-get install -y mosquitto"


def _find_mosquitto() -> str | None:
    for candidate in _MOSQUITTO_CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    return None


class Mosquitto:
    """A mosquitto process that can be stopped and started again on the same port."""

    host = "127.0.0.1"

    def __init__(self, binary: str, workdir: Path):
        self.binary = binary
        self.port = free_port(self.host)
        self.config = workdir / "mosquitto.conf"
        self.log = workdir / "mosquitto.log"
        # persistence off: a restart must behave like a fresh broker, which is
        # exactly the case a publisher has to survive.
        self.config.write_text(
            f"listener {self.port} {self.host}\n"
            "allow_anonymous true\n"
            "persistence false\n"
            f"log_dest file {self.log}\n"
            "log_type error\nlog_type warning\nlog_type notice\n"
        )
        self._proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        if self.running:
            return
        self._proc = subprocess.Popen(
            [self.binary, "-c", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        if not wait_for_port(self.host, self.port, timeout):
            self.stop()
            log = self.log.read_text() if self.log.exists() else ""
            pytest.fail(f"mosquitto did not accept connections on port {self.port} within {timeout} s\n{log}")

    def stop(self, timeout: float = 5.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
        if proc.stderr is not None:
            proc.stderr.close()


@pytest.fixture
def mosquitto(tmp_path):
    """A fresh mosquitto per test, so retained messages never leak between tests."""
    binary = _find_mosquitto()
    if binary is None:
        message = f"mosquitto is not installed; install it with: {_INSTALL_HINT}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    broker = Mosquitto(binary, tmp_path)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
