"""Device profiles: every built-in one validates; mistakes name the file and the field."""

from __future__ import annotations

import subprocess
import sys

import pytest

from edge_vad.errors import EdgeVadError
from edge_vad.profiles import PROFILES_DIR, list_profiles, load_profile

REQUIRED = {"jetson-orin-nano", "jetson-orin-nx", "jetson-agx-orin", "jetson-xavier-nx", "intel-cpu",
            "intel-igpu", "intel-npu", "desktop-cuda", "rpi5", "x86-cpu"}


def test_every_required_device_has_a_profile():
    assert REQUIRED <= set(list_profiles())


@pytest.mark.parametrize("name", list_profiles())
def test_profile_is_consistent_with_its_target(name):
    from converters.targets import TARGETS

    p = load_profile(name)
    t = TARGETS[p.target]
    assert p.name == name and p.backend == t.backend and p.precision in t.precisions
    assert p.latency_budget_ms > 0 and p.max_cameras >= 1
    assert "systemd" in p.firmware and "mosquitto" in p.firmware
    if p.backend == "tensorrt":
        assert p.workspace_mb and "jetson" in p.firmware and p.power_mode is not None


def _write(tmp_path, text):
    path = tmp_path / "mine.yaml"
    path.write_text((PROFILES_DIR / "x86-cpu.yaml").read_text() + text)
    return path


def test_user_yaml_loads(tmp_path):
    assert load_profile(_write(tmp_path, "")).name == "mine"


def test_unknown_key_is_rejected_naming_file_and_field(tmp_path):
    path = _write(tmp_path, "thread: 4\n")
    with pytest.raises(EdgeVadError) as exc:
        load_profile(path)
    assert str(path) in str(exc.value) and "thread: Extra inputs are not permitted" in str(exc.value)


def test_nested_field_error_names_the_path(tmp_path):
    path = tmp_path / "cam.yaml"
    path.write_text((PROFILES_DIR / "x86-cpu.yaml").read_text().replace("fps: 10", "fps: -1"))
    with pytest.raises(EdgeVadError, match=r"camera\.fps: Input should be greater than 0"):
        load_profile(path)


def test_backend_that_does_not_match_the_target_is_rejected(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text((PROFILES_DIR / "rpi5.yaml").read_text().replace("backend: onnxruntime", "backend: openvino"))
    with pytest.raises(EdgeVadError, match="target 'cpu' runs on backend 'onnxruntime', not 'openvino'"):
        load_profile(path)


def test_unknown_profile_lists_the_known_ones():
    with pytest.raises(EdgeVadError, match="unknown profile 'rpi6'.*rpi5"):
        load_profile("rpi6")


def test_cli_profiles_list_and_show():
    exe = [sys.executable, "-c", "import cli; cli.main()"]
    out = subprocess.run(exe + ["profiles", "list"], capture_output=True, text=True, check=True).stdout
    assert all(name in out for name in REQUIRED)
    show = subprocess.run(exe + ["profiles", "show", "jetson-agx-orin"], capture_output=True, text=True, check=True).stdout
    assert "dla_core: 0" in show and "backend: tensorrt" in show
    bad = subprocess.run(exe + ["profiles", "show", "nope"], capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown profile 'nope'" in bad.stderr and "Traceback" not in bad.stderr
