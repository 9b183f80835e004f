"""``edge-vad package``: bundle + device profile + matching firmware configs + the edge-vad wheel + install script,
one archive.

``install.sh`` runs as root on the device, so nothing from the manifest or the profile reaches it unchecked:
identifiers must match a strict pattern, every value is shell-quoted, and the script first checks every file of
the archive (manifest included) against ``SHA256SUMS``. It installs the wheel it ships, built from this very
edge-vad, so the device runs exactly the version that converted and checked the bundle.
"""

from __future__ import annotations

import hashlib
import io
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from edge_vad.errors import EdgeVadError
from edge_vad.profiles import load_profile, profile_path
from edge_vad.runtime.bundle.loader import load_bundle
from edge_vad.shipped import shipped_dir

SOURCE_ROOT = Path(__file__).resolve().parents[1]  # the wheel is built from this tree
FIRMWARE_DIR = shipped_dir("firmware_configs")
EXTRAS = {"onnxruntime": "", "openvino": "[openvino]", "tensorrt": "[tensorrt]"}
#: the systemd drop-in (firmware_configs/systemd/devices/) with each target's device nodes; CPU needs none
DEVICE_DROPINS = {"cuda": "nvidia", "cuda-trt": "nvidia", "tensorrt": "nvidia", "jetson": "jetson",
                  "openvino-cpu": "openvino-cpu", "openvino-gpu": "openvino-gpu", "openvino-npu": "openvino-npu"}
_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
SUMS = "SHA256SUMS"

INSTALL = """#!/bin/sh
# Installs an edge-vad deployment: bundle {bundle_id}, profile {profile}, edge-vad {version}.
# Run as root from the unpacked folder.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
cd "$HERE"
# Every file of this archive, the bundle's manifest included, as it was packaged.
sha256sum --quiet --strict -c {sums}
id edge-vad >/dev/null 2>&1 || useradd --system --home /var/lib/edge-vad --shell /usr/sbin/nologin --groups video edge-vad
install -d -o root -g edge-vad -m 0750 /opt/edge-vad /etc/edge-vad
[ -d /opt/edge-vad/venv ] || python3 -m venv{venv_flags} /opt/edge-vad/venv
# This very build of edge-vad (the same version number may be another build): its dependencies, then itself.
{pip_env}/opt/edge-vad/venv/bin/pip install {wheel_extra}
/opt/edge-vad/venv/bin/pip install --force-reinstall --no-deps {wheel}
rm -rf /opt/edge-vad/bundle && cp -r "$HERE/bundle" /opt/edge-vad/bundle
install -m 0640 -g edge-vad "$HERE/profile.yaml" /etc/edge-vad/profile.yaml
{steps}
systemctl daemon-reload
{enable}
echo "installed edge-vad {version}; edit /etc/edge-vad/device.yaml, then: systemctl restart edge-vad"
"""

STEPS = {
    "systemd": """install -m 0644 "$HERE/firmware/systemd/edge-vad.service" /etc/systemd/system/
{dropin}if [ ! -f /etc/edge-vad/device.yaml ]; then
  # device_id and MQTT username are both the host name (the broker's ACL keys on the username).
  DEVICE_ID=$(hostname -s | tr -c 'A-Za-z0-9_\\n-' '-')
  sed "s/@DEVICE_ID@/$DEVICE_ID/g" "$HERE/firmware/systemd/device.yaml" > /etc/edge-vad/device.yaml
  chgrp edge-vad /etc/edge-vad/device.yaml && chmod 0640 /etc/edge-vad/device.yaml
  echo "wrote /etc/edge-vad/device.yaml for device $DEVICE_ID (MQTT user $DEVICE_ID: firmware/mosquitto/make-passwd.sh)"
fi
# The MQTT password: root-only, handed to the service by systemd (LoadCredential=).
[ -f /etc/edge-vad/mqtt-password ] || install -m 0600 /dev/null /etc/edge-vad/mqtt-password""",
    "mosquitto": """if [ -d /etc/mosquitto/conf.d ]; then
  install -m 0644 "$HERE/firmware/mosquitto/edge-vad.conf" /etc/mosquitto/conf.d/
  install -m 0644 "$HERE/firmware/mosquitto/edge-vad.acl" /etc/mosquitto/
  echo 'mosquitto: certificates with firmware/mosquitto/make-certs.sh, one user per device with make-passwd.sh'
fi""",
    "jetson": """install -m 0644 "$HERE/firmware/jetson/edge-vad-jetson-clocks.service" /etc/systemd/system/
printf 'EDGE_VAD_NVPMODEL=%s\\n' {power_mode} > /etc/edge-vad/jetson.env""",
    "rpi": """grep -q 'dtoverlay=imx708' /boot/firmware/config.txt || cat "$HERE/firmware/rpi/config.txt" >> /boot/firmware/config.txt
install -m 0644 "$HERE/firmware/rpi/libcamera.env" /etc/edge-vad/
echo 'rpi: camera overlay added to /boot/firmware/config.txt; reboot to apply'""",
    "udev": """install -m 0644 "$HERE/firmware/udev/99-edge-vad-cameras.rules" /etc/udev/rules.d/
{{ udevadm control --reload-rules && udevadm trigger --subsystem-match=video4linux; }} || true""",
}

DROPIN = """install -d -m 0755 /etc/systemd/system/edge-vad.service.d
install -m 0644 "$HERE/firmware/systemd/devices/{name}.conf" /etc/systemd/system/edge-vad.service.d/devices.conf
"""


def _checked(what: str, value: str) -> str:
    if not _SAFE.match(value):
        raise EdgeVadError(f"{what} {value!r}: letters, digits, '.', '_' and '-' only (it goes into a root install "
                           "script)")
    return value


def build_wheel(out_dir: Path, log=print) -> Path:
    """The wheel of this edge-vad, from its source tree (``pip wheel --no-deps``)."""
    if not (SOURCE_ROOT / "pyproject.toml").is_file():
        raise EdgeVadError(f"edge-vad package builds the device's edge-vad wheel from the source tree, and this "
                           f"edge-vad ({SOURCE_ROOT}) has none: run it from a checkout (pip install -e .)")
    with tempfile.TemporaryDirectory(prefix="edge-vad-wheel-") as tmp:
        # A copy without build/ and *.egg-info: setuptools would pack what an earlier build left there.
        src = Path(tmp) / "src"
        shutil.copytree(SOURCE_ROOT, src, ignore=shutil.ignore_patterns(
            "build", "dist", "*.egg-info", ".venv*", "__pycache__", ".git", "runs", ".pytest_cache", "tests"))
        cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out_dir), str(src)]
        try:
            import setuptools  # noqa: F401 - present: build here, without fetching build tools
            cmd.insert(4, "--no-build-isolation")
        except ImportError:
            pass
        log(f"building the edge-vad wheel from {SOURCE_ROOT}")
        proc = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted(Path(out_dir).glob("edge_vad-*.whl"))
    if proc.returncode != 0 or len(wheels) != 1:
        raise EdgeVadError(f"building the edge-vad wheel failed: {' '.join(cmd)}\n{proc.stderr.strip()[-2000:]}")
    return wheels[0]


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def package(bundle_dir: Path, profile: str, out: Path, log=print) -> Path:
    bundle = load_bundle(bundle_dir)
    prof = load_profile(profile)
    t = bundle.manifest.target
    if t.backend != prof.backend:
        raise EdgeVadError(
            f"bundle {bundle.id} was converted for backend '{t.backend}' (target {t.name}), but profile "
            f"'{prof.name}' runs '{prof.backend}'; convert with --profile {prof.name}"
        )
    if t.precision != prof.precision:
        log(f"note: bundle precision {t.precision} differs from the profile's {prof.precision}")
    for name in prof.firmware:
        if not (FIRMWARE_DIR / name).is_dir() or name not in STEPS:
            raise EdgeVadError(f"{profile_path(profile)}: firmware '{name}' has no folder in {FIRMWARE_DIR}")
    bundle_id = _checked("bundle_id", bundle.id)
    profile_name = _checked(f"{profile_path(profile)}: name", prof.name)
    power_mode = _checked(f"{profile_path(profile)}: power_mode", prof.power_mode or "0")
    jetson = "jetson" in prof.firmware or prof.target == "jetson"
    dropin = DEVICE_DROPINS.get(prof.target)  # the device the profile describes decides its nodes
    steps = "\n".join(STEPS[n].format(power_mode=shlex.quote(power_mode),
                                      dropin=DROPIN.format(name=dropin) if dropin else "")
                      for n in prof.firmware)
    enable = "systemctl enable edge-vad.service" + (
        "\nsystemctl enable edge-vad-jetson-clocks.service" if "jetson" in prof.firmware else "")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    root = out.name.removesuffix(".tar.gz").removesuffix(".tgz")
    with tempfile.TemporaryDirectory(prefix="edge-vad-package-") as tmp:
        wheel = build_wheel(Path(tmp), log=log)
        version = wheel.name.split("-")[1]
        # JetPack ships TensorRT (and the GStreamer OpenCV) for the system Python only; pycuda compiles
        # against the CUDA toolkit, which JetPack keeps in /usr/local/cuda.
        venv_flags = " --system-site-packages" if jetson else ""
        pip_env = ('PATH="/usr/local/cuda/bin:$PATH" CPATH="/usr/local/cuda/include${CPATH:+:$CPATH}" '
                   if jetson else "")
        script = INSTALL.format(bundle_id=bundle_id, profile=profile_name, version=version, sums=SUMS,
                                venv_flags=venv_flags, pip_env=pip_env,
                                wheel_extra=f'"$HERE"/{shlex.quote(f"wheel/{wheel.name}{EXTRAS[prof.backend]}")}',
                                wheel=f'"$HERE"/{shlex.quote(f"wheel/{wheel.name}")}',
                                steps=steps, enable=enable).encode()
        files: dict[str, Path] = {}
        for f in sorted(p for p in bundle.root.rglob("*") if p.is_file()):
            files[f"bundle/{f.relative_to(bundle.root).as_posix()}"] = f
        files["profile.yaml"] = profile_path(profile)
        for name in prof.firmware:
            for f in sorted(p for p in (FIRMWARE_DIR / name).rglob("*") if p.is_file()):
                files[f"firmware/{name}/{f.relative_to(FIRMWARE_DIR / name).as_posix()}"] = f
        files[f"wheel/{wheel.name}"] = wheel
        sums = "".join(f"{_sha256(p.read_bytes())}  {rel}\n" for rel, p in files.items())
        sums += f"{_sha256(script)}  install.sh\n"
        with tarfile.open(out, "w:gz") as tar:
            for rel, path in files.items():
                tar.add(path, arcname=f"{root}/{rel}", recursive=False)
            for rel, data, mode in (("install.sh", script, 0o755), (SUMS, sums.encode(), 0o644)):
                info = tarfile.TarInfo(f"{root}/{rel}")
                info.size, info.mode = len(data), mode
                tar.addfile(info, io.BytesIO(data))
    log(f"{out}: bundle {bundle_id}, profile {profile_name}, edge-vad {version} ({wheel.name}), firmware "
        f"{', '.join(prof.firmware)}, install.sh; sha256 {_sha256(out.read_bytes())} (compare on the device)")
    return out
