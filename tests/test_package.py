"""`edge-vad package`: the archive carries the wheel it was built from, a root install script that nothing
in a manifest or profile can inject into, and checksums over every file."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tarfile
import zipfile

import pytest

import edge_vad
from edge_vad.errors import EdgeVadError
from helpers import REPO

SHIPPED = REPO / "edge_vad" / "assets" / "bundles" / "stconvlstm-edge"
QUIET = {"log": lambda *a: None}


def _unpack(archive, where):
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        tar.extractall(where, filter="data")
    return names, where / archive.name.removesuffix(".tar.gz")


def _check_shell(script):
    for shell in ("sh", "bash"):
        if shutil.which(shell):
            proc = subprocess.run([shell, "-n", str(script)], capture_output=True, text=True)
            assert proc.returncode == 0, (shell, proc.stderr)
    if shutil.which("shellcheck"):
        proc = subprocess.run(["shellcheck", "-s", "sh", str(script)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout


@pytest.fixture(scope="module")
def rpi_package(tmp_path_factory):
    from converters.package import package

    tmp = tmp_path_factory.mktemp("pkg")
    archive = package(SHIPPED, "rpi5", tmp / "deploy.tar.gz", **QUIET)
    names, root = _unpack(archive, tmp / "x")
    return names, root


def test_the_archive_carries_the_wheel_it_was_built_from_and_installs_exactly_that(rpi_package, tmp_path):
    names, root = rpi_package
    wheel = f"wheel/edge_vad-{edge_vad.__version__}-py3-none-any.whl"
    assert f"deploy/{wheel}" in names
    with zipfile.ZipFile(root / wheel) as z:
        files = set(z.namelist())
    assert {"edge_vad/__init__.py", "edge_vad/runtime/daemon/scheduler.py", "cli.py"} <= files
    script = (root / "install.sh").read_text()
    assert "pip install --upgrade 'edge-vad" not in script and "'edge-vad" not in script
    assert f'/opt/edge-vad/venv/bin/pip install --force-reinstall --no-deps "$HERE"/{wheel}\n' in script
    assert "--system-site-packages" not in script and "edge-vad.service.d" not in script  # a CPU device
    _check_shell(root / "install.sh")
    # The wheel installs and is this edge-vad.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([venv / "bin" / "pip", "install", "-q", "--no-deps", root / wheel], check=True)
    got = subprocess.run([venv / "bin" / "python", "-c", "import edge_vad; print(edge_vad.__version__)"],
                         capture_output=True, text=True, cwd=tmp_path)
    assert got.stdout.strip() == edge_vad.__version__


def test_every_file_manifest_included_is_checked_before_anything_is_installed(rpi_package, tmp_path):
    _, root = rpi_package
    script = (root / "install.sh").read_text().splitlines()
    first_action = next(i for i, line in enumerate(script) if line.startswith(("id ", "install ", "useradd")))
    check = script.index("sha256sum --quiet --strict -c SHA256SUMS")
    assert check < first_action
    sums = dict(reversed(line.split("  ", 1)) for line in (root / "SHA256SUMS").read_text().splitlines())
    assert "bundle/manifest.json" in sums and "install.sh" in sums and any(k.startswith("wheel/") for k in sums)
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    assert subprocess.run(["sha256sum", "--quiet", "--strict", "-c", "SHA256SUMS"], cwd=copy).returncode == 0
    manifest = json.loads((copy / "bundle" / "manifest.json").read_text())
    manifest["score"]["calibration"]["threshold"] = 99999.0  # alerts off, checksums of the model files intact
    (copy / "bundle" / "manifest.json").write_text(json.dumps(manifest))
    proc = subprocess.run(["sha256sum", "--quiet", "--strict", "-c", "SHA256SUMS"], cwd=copy, capture_output=True,
                          text=True)
    assert proc.returncode != 0 and "bundle/manifest.json: FAILED" in proc.stdout + proc.stderr


@pytest.mark.parametrize("field, value", [("power_mode", "0'; touch /tmp/edge-vad-pwned; '"),
                                          ("name", "rpi5\ntouch /tmp/edge-vad-pwned"),
                                          ("power_mode", "$(touch /tmp/edge-vad-pwned)")])
def test_a_profile_cannot_inject_into_the_root_install_script(tmp_path, field, value):
    import yaml

    from converters.package import package

    profile = yaml.safe_load((REPO / "profiles" / "rpi5.yaml").read_text())
    profile[field] = value
    path = tmp_path / "evil.yaml"
    path.write_text(yaml.safe_dump(profile))
    with pytest.raises(EdgeVadError, match=f"{field} .*letters, digits"):
        package(SHIPPED, str(path), tmp_path / "deploy.tar.gz", **QUIET)
    assert not (tmp_path / "deploy.tar.gz").exists()


def test_a_manifest_cannot_inject_through_its_bundle_id_or_paths(tmp_path):
    from edge_vad.runtime.bundle.loader import load_bundle

    for field, value, message in (("bundle_id", "x\n$(touch /tmp/edge-vad-pwned)", "bundle_id: letters"),
                                  ("files", {"../../etc/passwd": "0" * 64}, "not a path inside the bundle")):
        bad = tmp_path / field
        shutil.copytree(SHIPPED, bad)
        manifest = json.loads((bad / "manifest.json").read_text())
        manifest[field] = value if field != "files" else {**manifest["files"], **value}
        (bad / "manifest.json").write_text(json.dumps(manifest))
        with pytest.raises(EdgeVadError, match=message):
            load_bundle(bad)


@pytest.mark.slow
def test_the_jetson_installer_uses_the_system_tensorrt_and_cuda(daemon_bundle, tmp_path):
    from converters import convert
    from converters.package import package

    bundle = tmp_path / "jetson-bundle"
    convert(daemon_bundle.parent / "ckpt", "jetson", bundle, log=lambda *a: None)
    archive = package(bundle, "jetson-orin-nano", tmp_path / "deploy.tar.gz", **QUIET)
    names, root = _unpack(archive, tmp_path / "x")
    script = (root / "install.sh").read_text()
    assert "python3 -m venv --system-site-packages /opt/edge-vad/venv" in script
    assert 'PATH="/usr/local/cuda/bin:$PATH" CPATH="/usr/local/cuda/include${CPATH:+:$CPATH}" ' in script
    assert f'wheel/edge_vad-{edge_vad.__version__}-py3-none-any.whl[tensorrt]' in script
    assert "printf 'EDGE_VAD_NVPMODEL=%s\\n' 0 > /etc/edge-vad/jetson.env" in script
    assert ('"$HERE/firmware/systemd/devices/jetson.conf" /etc/systemd/system/edge-vad.service.d/devices.conf'
            in script)
    assert "deploy/firmware/systemd/devices/jetson.conf" in names
    _check_shell(root / "install.sh")
