"""Device configs: every mistake reported with its YAML line and camera; bad bundles refused."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from edge_vad.errors import EdgeVadError
from edge_vad.runtime.daemon.config import config_from_flags, parse_config, validate_file

GOOD = """\
device_id: box1
broker:
  host: 127.0.0.1
  port: 1883
cameras:
  - name: door
    source: rtsp://cam1/stream
    bundle: /opt/bundle
"""

MISTAKES = """\
device_id: box1
broker:
  host: 127.0.0.1
  port: 99999
  pasword_file: /etc/secret
cameras:
  - name: door
    source: rtsp://cam1/stream
    bundle: /opt/bundle
    fps: -5
  - name: yard
    source: /dev/video0
    bundle: /opt/bundle
    roi: [10, 10, 0, 50]
    treshold: 3.0
  - name: bad/name
    source: 0
    bundle: /opt/bundle
  - name: gate
    source: 2
    bundle: /opt/bundle
    threshold: 1.0
    end_threshold: 2.0
outputs:
  stats_interval_s: 0
"""


def test_good_config_parses_with_defaults():
    cfg = parse_config(GOOD, "/etc/edge-vad/device.yaml")
    assert cfg.device_id == "box1" and cfg.cameras[0].name == "door"
    assert cfg.cameras[0].budget_ms is None and cfg.cameras[0].min_frames == 3
    # Relative state dir resolves beside the config file.
    assert str(cfg.state.dir) == "/etc/edge-vad/edge-vad-state"


def test_every_mistake_is_reported_with_line_and_camera():
    with pytest.raises(EdgeVadError) as info:
        parse_config(MISTAKES, "device.yaml")
    lines = str(info.value).splitlines()
    assert lines[0] == "device.yaml: 8 error(s)"
    expected = [
        "device.yaml:4: broker.port: Input should be less than 65536",
        "device.yaml:5: broker.pasword_file: unknown key",
        "device.yaml:10: cameras[0].fps (camera 'door'): Input should be greater than 0",
        "device.yaml:14: cameras[1].roi (camera 'yard'): roi is [x, y, width, height]",
        "device.yaml:15: cameras[1].treshold (camera 'yard'): unknown key",
        "device.yaml:16: cameras[2].name (camera 'bad/name'): camera name must be letters",
        "device.yaml:19: cameras[3] (camera 'gate'): end_threshold (2.0) must not exceed threshold (1.0)",
        "device.yaml:25: outputs.stats_interval_s: Input should be greater than 0",
    ]
    body = "\n".join(lines[1:])
    for e in expected:
        assert e in body, f"missing {e!r} in:\n{body}"


def test_yaml_syntax_error_names_the_line():
    with pytest.raises(EdgeVadError, match=r"device.yaml:3: not valid YAML \(mapping values are not allowed"):
        parse_config("device_id: a\ncameras:\n  - name: door: 2\n", "device.yaml")


def test_duplicate_cameras_and_password_rules():
    text = GOOD + "  - name: door\n    source: 1\n    bundle: /b\n"
    with pytest.raises(EdgeVadError, match="repeated: door"):
        parse_config(text, "d.yaml")
    text = GOOD.replace("  port: 1883\n", "  port: 1883\n  password_env: X\n")
    with pytest.raises(EdgeVadError, match=r"d.yaml:2: broker: a password needs a username"):
        parse_config(text, "d.yaml")


def test_password_comes_from_env_and_never_shows_in_config_repr(monkeypatch):
    monkeypatch.setenv("EDGE_PW", "hunter2-secret")
    text = GOOD.replace("  port: 1883\n", "  port: 1883\n  username: edge\n  password_env: EDGE_PW\n")
    cfg = parse_config(text, "d.yaml")
    assert cfg.broker.password().get_secret_value() == "hunter2-secret"
    assert "hunter2" not in repr(cfg) and "hunter2" not in str(cfg.broker) and "hunter2" not in str(cfg.broker.password())
    flags = config_from_flags("/b", "0", "cam", "mqtt://u:hunter2-secret@h:1", "t", "d", "/tmp/s", None)
    assert flags.broker.password().get_secret_value() == "hunter2-secret"
    assert "hunter2" not in repr(flags) and "hunter2" not in flags.model_dump_json()


def test_validate_checks_bundles_profiles_and_files(tmp_path, daemon_bundle):
    bad = tmp_path / "bad-bundle"
    shutil.copytree(daemon_bundle, bad)
    data = bytearray((bad / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (bad / "model.onnx").write_bytes(bytes(data))
    cfg = tmp_path / "device.yaml"
    cfg.write_text(f"""\
device_id: box1
cameras:
  - name: good
    source: rtsp://cam/1
    bundle: {daemon_bundle}
  - name: tampered
    source: rtsp://cam/2
    bundle: {bad}
    profile: no-such-profile
  - name: missing
    source: nowhere.avi
    bundle: {daemon_bundle}
""")
    with pytest.raises(EdgeVadError) as info:
        validate_file(cfg)
    msg = str(info.value)
    assert f"{cfg}:8: cameras[1].bundle (camera 'tampered'): " in msg and "checksum mismatch" in msg
    assert f"{cfg}:9: cameras[1].profile (camera 'tampered'): unknown profile 'no-such-profile'" in msg
    assert f"{cfg}:11: cameras[2].source (camera 'missing'): " in msg and "no such video file" in msg
    assert "camera 'good'" not in msg

    # The daemon refuses to start on the tampered bundle, naming the camera.
    from edge_vad.runtime.daemon.scheduler import Daemon

    text = cfg.read_text().replace("    profile: no-such-profile\n", "")
    with pytest.raises(EdgeVadError, match=r"camera tampered: .*checksum mismatch"):
        Daemon(parse_config(text, cfg))


def test_cli_config_validate_prints_errors_and_exits_2(tmp_path):
    cfg = tmp_path / "device.yaml"
    cfg.write_text(MISTAKES)
    proc = subprocess.run([sys.executable, "-m", "cli", "config", "validate", str(cfg)], capture_output=True,
                          text=True, cwd=tmp_path, env={"PYTHONPATH": str(__import__("helpers").REPO), "PATH": ""})
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"{cfg}:15: cameras[1].treshold (camera 'yard'): unknown key" in proc.stderr


def test_a_gstreamer_pipeline_without_gstreamer_in_opencv_is_a_config_error(tmp_path, daemon_bundle):
    from edge_vad.runtime.capture.sources import CaptureThread, gstreamer_available

    if gstreamer_available():
        pytest.skip("this OpenCV has GStreamer: the pipeline would open")
    pipeline = "nvarguscamerasrc ! video/x-raw(memory:NVMM),width=1280,height=720 ! nvvidconv ! appsink"
    cfg = tmp_path / "device.yaml"
    cfg.write_text(f"device_id: box1\ncameras:\n  - name: csi\n    source: '{pipeline}'\n    bundle: {daemon_bundle}\n")
    with pytest.raises(EdgeVadError) as info:
        validate_file(cfg)
    assert f"{cfg}:4: cameras[0].source (camera 'csi'): GStreamer pipeline" in str(info.value)
    assert "--system-site-packages" in str(info.value)
    with pytest.raises(EdgeVadError, match="camera csi: GStreamer pipeline source, but this OpenCV"):
        CaptureThread("csi", pipeline)


def test_motion_gate_is_off_by_default_on_with_true_and_checked():
    assert parse_config(GOOD).cameras[0].motion_gate is None
    on = parse_config(GOOD + "    motion_gate: true\n").cameras[0].motion_gate
    assert (on.pixel_delta, on.min_changed) == (6, 0.0005)
    with pytest.raises(EdgeVadError, match=r"d.yaml:10: cameras\[0\].motion_gate.pixel_delta \(camera 'door'\)"):
        parse_config(GOOD + "    motion_gate:\n      pixel_delta: 0\n", "d.yaml")


# --------------------------------------------------------------- hardening (issue 15.5, 15.13, 14 §3)


def test_a_repeated_key_is_rejected_with_both_lines():
    # YAML keeps the last one: this silently turned every alert off.
    text = GOOD + "    threshold: 3.5\n    min_frames: 2\n    threshold: 99999\n"
    with pytest.raises(EdgeVadError) as info:
        parse_config(text, "d.yaml")
    assert "d.yaml:11: 'threshold' is given twice (first on line 9)" in str(info.value)
    with pytest.raises(EdgeVadError, match=r"d.yaml:5: 'port' is given twice \(first on line 4\)"):
        parse_config(GOOD.replace("  port: 1883\n", "  port: 1883\n  port: 1884\n"), "d.yaml")


@pytest.mark.parametrize("source, message", [
    ("foo://cam/1", "unknown scheme 'foo://'"),
    ("htps://cam/1", "unknown scheme 'htps://'"),
])
def test_an_unknown_source_scheme_is_a_config_error(source, message):
    with pytest.raises(EdgeVadError) as info:
        parse_config(GOOD.replace("rtsp://cam1/stream", source), "d.yaml")
    assert "d.yaml:7: cameras[0].source (camera 'door'):" in str(info.value) and message in str(info.value)


def test_file_url_is_a_file_not_a_camera_to_reconnect_to(tmp_path):
    from edge_vad.runtime.capture.sources import CaptureThread

    clip = tmp_path / "clip.avi"
    clip.write_bytes(b"")
    cfg = parse_config(GOOD.replace("rtsp://cam1/stream", f"file://{clip}"), "d.yaml")
    assert cfg.cameras[0].source == str(clip)
    capture = CaptureThread("door", f"file://{clip}")
    assert capture.is_file and capture.source == str(clip)
    with pytest.raises(EdgeVadError, match="no such video file"):
        parse_config(GOOD.replace("rtsp://cam1/stream", f"file://{tmp_path}/missing.avi"), tmp_path / "d.yaml")
        CaptureThread("door", f"file://{tmp_path}/missing.avi")


def test_unknown_keys_get_a_did_you_mean():
    with pytest.raises(EdgeVadError) as info:
        parse_config(MISTAKES, "device.yaml")
    msg = str(info.value)
    assert "device.yaml:5: broker.pasword_file: unknown key; did you mean 'password_file'?" in msg
    assert "device.yaml:15: cameras[1].treshold (camera 'yard'): unknown key; did you mean 'threshold'?" in msg
    with pytest.raises(EdgeVadError, match=r"outputs.homeasistant: unknown key; did you mean 'homeassistant'"):
        parse_config(GOOD + "outputs:\n  homeasistant: {enabled: true}\n")


@pytest.mark.parametrize("url", ["mqtt//broker.local", "mqtt:/broker.local:1883", "mqtts//10.0.0.5"])
def test_a_broker_url_without_its_colon_says_so(url):
    from edge_vad.runtime.alerts.mqtt import parse_broker_url

    with pytest.raises(EdgeVadError, match=r"write 'mqtts?://' \(colon and two slashes\)"):
        parse_broker_url(url)


def test_home_assistant_ids_that_would_collide_are_rejected():
    ha = "outputs:\n  homeassistant: {enabled: true}\n"
    cams = "".join(f"  - name: {n}\n    source: {i}\n    bundle: /b\n" for i, n in enumerate(["door-1", "door_1", "door.1"]))
    text = "device_id: box1\ncameras:\n" + cams + ha
    with pytest.raises(EdgeVadError) as info:
        parse_config(text, "d.yaml")
    assert "cameras 'door_1' and 'door.1' get the same Home Assistant object id 'door_1'" in str(info.value)
    parse_config(text.replace("door.1", "door2"))  # 'door-1' and 'door_1' stay apart
    with pytest.raises(EdgeVadError, match="device_id 'lab.1': with outputs.homeassistant enabled"):
        parse_config(text.replace("box1", "lab.1").replace("door.1", "door2"))
    parse_config(text.replace("box1", "lab.1").replace("door.1", "door2").replace("enabled: true", "enabled: false"))


def test_discovery_ids_are_distinct_for_names_that_normalise_alike():
    from edge_vad.runtime.alerts.homeassistant import discovery_messages

    seen_topics, seen_uids = set(), set()
    for device in ("lab-1", "lab_1"):
        for topic, payload in discovery_messages("homeassistant", "edge-vad", device, ["door-1", "door_1"]):
            seen_topics.add(topic)
            seen_uids.add(__import__("json").loads(payload)["unique_id"])
    assert len(seen_topics) == len(seen_uids) == 8


def test_validate_warns_when_the_mqtt_user_is_not_the_device(tmp_path, daemon_bundle):
    cfg = tmp_path / "device.yaml"
    cfg.write_text(f"device_id: pi-frontdoor\nbroker:\n  username: edge-vad-device\ncameras:\n"
                   f"  - name: door\n    source: rtsp://cam/1\n    bundle: {daemon_bundle}\n")
    proc = subprocess.run([sys.executable, "-m", "cli", "config", "validate", str(cfg)], capture_output=True,
                          text=True, cwd=__import__("helpers").REPO)
    assert proc.returncode == 0, proc.stderr
    assert "broker.username 'edge-vad-device' is not device_id 'pi-frontdoor'" in proc.stderr
    assert "pattern write edge-vad/%u/#" in proc.stderr
    cfg.write_text(cfg.read_text().replace("edge-vad-device", "pi-frontdoor"))
    proc = subprocess.run([sys.executable, "-m", "cli", "config", "validate", str(cfg)], capture_output=True,
                          text=True, cwd=__import__("helpers").REPO)
    assert proc.returncode == 0 and "warning" not in proc.stderr, proc.stderr


def test_password_credential_comes_from_systemds_credentials_directory(tmp_path, monkeypatch):
    text = GOOD.replace("  port: 1883\n", "  port: 1883\n  username: box1\n  password_credential: mqtt-password\n")
    cfg = parse_config(text, "d.yaml")
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    with pytest.raises(EdgeVadError, match="CREDENTIALS_DIRECTORY is not set; it comes from systemd's LoadCredential="):
        cfg.broker.password()
    (tmp_path / "mqtt-password").write_text("s3cret-horse\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    assert cfg.broker.password().get_secret_value() == "s3cret-horse"
    assert "s3cret" not in repr(cfg)
    with pytest.raises(EdgeVadError, match="give one of password_file, password_env, password_credential"):
        parse_config(text.replace("  password_credential", "  password_env: X\n  password_credential"), "d.yaml")


def test_the_shipped_device_config_validates_and_agrees_with_the_acl(daemon_bundle, tmp_path):
    from helpers import REPO

    text = (REPO / "firmware_configs/systemd/device.yaml").read_text().replace("@DEVICE_ID@", "pi-door")
    text = text.replace("/opt/edge-vad/bundle", str(daemon_bundle)).replace("/etc/edge-vad/profile.yaml", "rpi5")
    text = text.replace("/etc/edge-vad/ca.crt", str(tmp_path / "ca.crt")).replace("/var/lib/edge-vad", str(tmp_path))
    (tmp_path / "ca.crt").write_text("placeholder: only the file's existence is checked here\n")
    from edge_vad.runtime.daemon.config import config_warnings

    cfg = parse_config(text, tmp_path / "device.yaml")
    assert cfg.device_id == cfg.broker.username == "pi-door" and cfg.prefix == "edge-vad"
    assert [w for w in config_warnings(cfg) if "LoadCredential" not in w] == []
    acl = (REPO / "firmware_configs/mosquitto/edge-vad.acl").read_text()
    assert "pattern write edge-vad/%u/#" in acl and "pattern write homeassistant/+/%u/#" in acl
    unit = (REPO / "firmware_configs/systemd/edge-vad.service").read_text()
    assert "--config /etc/edge-vad/device.yaml" in unit and "LoadCredential=mqtt-password:" in unit
    assert "--broker" not in unit and "EnvironmentFile=/etc/edge-vad/edge-vad.env" not in unit
