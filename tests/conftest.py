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

from helpers import find_mosquitto as _find_mosquitto  # noqa: E402
from helpers import free_port, wait_for_port  # noqa: E402

_INSTALL_HINT = "sudo apt-get install -y mosquitto"


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


# ------------------------------------------------------------ daemon tests


@pytest.fixture(scope="session")
def daemon_bundle(tmp_path_factory):
    """A tiny trained stconvlstm converted to an ONNX bundle, shared by the daemon tests."""
    from helpers import need_vtest

    vtest = need_vtest()
    from converters import convert
    from edge_vad.models import get_model
    from edge_vad.training.trainer import train

    root = tmp_path_factory.mktemp("daemon-bundle")
    train("stconvlstm", "edge", vtest, root / "ckpt", frames="0:240", epochs=1,
          overrides=get_model("stconvlstm").test_overrides, threads=1, log=lambda *a: None)
    convert(root / "ckpt", "cpu", root / "bundle", log=lambda *a: None)
    return root / "bundle"


@pytest.fixture(scope="session")
def anomaly_clip(tmp_path_factory):
    """60 normal vtest frames at 10 fps with a white block racing across frames 25-44."""
    from helpers import flying_block_clip, need_vtest

    from edge_vad.data.frames import read_frames

    normal = list(read_frames(need_vtest(), 140, 200))
    path, span = flying_block_clip(tmp_path_factory.mktemp("clip") / "clip.avi", normal, anomaly_at=25)
    return path


class _ConfiguredMosquitto(Mosquitto):
    """mosquitto with extra configuration lines (password file, persistence)."""

    def __init__(self, binary: str, workdir: Path, extra: str):
        super().__init__(binary, workdir)
        text = self.config.read_text()
        if "allow_anonymous false" in extra:
            text = text.replace("allow_anonymous true\n", "")
        if "persistence true" in extra:
            text = text.replace("persistence false\n", "")
        self.config.write_text(text + extra)


def _mosquitto_with(tmp_path, extra: str):
    binary = _find_mosquitto()
    if binary is None:
        pytest.skip(f"mosquitto is not installed; install it with: {_INSTALL_HINT}")
    return _ConfiguredMosquitto(binary, tmp_path, extra)


def _running(broker):
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def _password_file(tmp_path) -> Path:
    """A mosquitto password file admitting user 'edge' with password 'right-horse-battery'."""
    passwd = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    if not Path(passwd).exists():
        pytest.skip("mosquitto_passwd is not installed")
    pwfile = tmp_path / "passwd"
    pwfile.touch()
    subprocess.run([passwd, "-b", str(pwfile), "edge", "right-horse-battery"], check=True, capture_output=True)
    pwfile.chmod(0o600)
    return pwfile


def _as_me() -> str:
    import getpass

    # Started as root, mosquitto drops to user 'mosquitto', who cannot read our 0600 files.
    return f"user {getpass.getuser()}\n"


@pytest.fixture
def mosquitto_auth(tmp_path):
    """mosquitto that admits only user 'edge' with password 'right-horse-battery'."""
    pwfile = _password_file(tmp_path)
    yield from _running(_mosquitto_with(tmp_path, f"allow_anonymous false\npassword_file {pwfile}\n" + _as_me()))


@pytest.fixture
def mosquitto_persistent(tmp_path):
    """mosquitto that keeps sessions across restarts (a consumer's queued messages survive)."""
    store = tmp_path / "mq-store"
    store.mkdir()
    yield from _running(_mosquitto_with(tmp_path, f"persistence true\npersistence_location {store}/\n" + _as_me()))


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(folder: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate authority: (certificate, key)."""
    folder.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.crt",
             "-days", "2", "-subj", f"/CN={name}", cwd=folder)
    return folder / f"{name}.crt", folder / f"{name}.key"


@pytest.fixture
def mosquitto_tls(tmp_path):
    """mosquitto speaking only TLS (certificate from a private CA, for 127.0.0.1)
    and admitting only user 'edge' with password 'right-horse-battery'.
    ``broker.ca_file`` is the CA that signed it; ``broker.rogue_ca`` one that did not."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (apt-get install -y openssl)")
    pwfile = _password_file(tmp_path)
    pki = tmp_path / "pki"
    ca_crt, ca_key = make_ca(pki, "edge-vad-test-ca")
    rogue_crt, _ = make_ca(pki, "somebody-elses-ca")
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
             "-subj", "/CN=127.0.0.1", cwd=pki)
    (pki / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", str(ca_crt), "-CAkey", str(ca_key), "-CAcreateserial",
             "-out", "server.crt", "-days", "2", "-extfile", "san.ext", cwd=pki)
    broker = _mosquitto_with(tmp_path, f"cafile {ca_crt}\ncertfile {pki / 'server.crt'}\nkeyfile {pki / 'server.key'}\n"
                                       f"allow_anonymous false\npassword_file {pwfile}\n" + _as_me())
    broker.ca_file, broker.rogue_ca = ca_crt, rogue_crt
    yield from _running(broker)
