"""``edge-vad package``: bundle + device profile + matching firmware configs + install script, one archive."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from edge_vad.errors import EdgeVadError
from edge_vad.profiles import load_profile, profile_path
from edge_vad.runtime.bundle.loader import load_bundle
from edge_vad.shipped import shipped_dir

FIRMWARE_DIR = shipped_dir("firmware_configs")
EXTRAS = {"onnxruntime": "", "openvino": "[openvino]", "tensorrt": "[tensorrt]"}

INSTALL = """#!/bin/sh
# Installs an edge-vad deployment ({bundle_id}, profile {profile}). Run as root from the unpacked folder.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
id edge-vad >/dev/null 2>&1 || useradd --system --home /var/lib/edge-vad --shell /usr/sbin/nologin --groups video edge-vad
install -d -o root -g edge-vad -m 0750 /opt/edge-vad /etc/edge-vad
[ -d /opt/edge-vad/venv ] || python3 -m venv /opt/edge-vad/venv
/opt/edge-vad/venv/bin/pip install --upgrade 'edge-vad{extra}'
rm -rf /opt/edge-vad/bundle && cp -r "$HERE/bundle" /opt/edge-vad/bundle
install -m 0640 "$HERE/profile.yaml" /etc/edge-vad/profile.yaml
{steps}
systemctl daemon-reload
{enable}
echo "installed; edit /etc/edge-vad/edge-vad.env, then: systemctl restart edge-vad"
"""

STEPS = {
    "systemd": ("install -m 0644 \"$HERE/firmware/systemd/edge-vad.service\" /etc/systemd/system/\n"
                "[ -f /etc/edge-vad/edge-vad.env ] || install -m 0640 -g edge-vad \"$HERE/firmware/systemd/edge-vad.env\" /etc/edge-vad/"),
    "mosquitto": ("if [ -d /etc/mosquitto/conf.d ]; then\n"
                  "  install -m 0644 \"$HERE/firmware/mosquitto/edge-vad.conf\" /etc/mosquitto/conf.d/\n"
                  "  install -m 0644 \"$HERE/firmware/mosquitto/edge-vad.acl\" /etc/mosquitto/\n"
                  "  echo 'mosquitto: create users with firmware/mosquitto/make-passwd.sh DEVICE_ID, certs in /etc/mosquitto/certs'\n"
                  "fi"),
    "jetson": ("install -m 0644 \"$HERE/firmware/jetson/edge-vad-jetson-clocks.service\" /etc/systemd/system/\n"
               "printf 'EDGE_VAD_NVPMODEL=%s\\n' '{power_mode}' > /etc/edge-vad/jetson.env"),
    "rpi": ("grep -q 'dtoverlay=imx708' /boot/firmware/config.txt || cat \"$HERE/firmware/rpi/config.txt\" >> /boot/firmware/config.txt\n"
            "install -m 0644 \"$HERE/firmware/rpi/libcamera.env\" /etc/edge-vad/\n"
            "echo 'rpi: camera overlay added to /boot/firmware/config.txt; reboot to apply'"),
    "udev": ("install -m 0644 \"$HERE/firmware/udev/99-edge-vad-cameras.rules\" /etc/udev/rules.d/\n"
             "udevadm control --reload-rules && udevadm trigger --subsystem-match=video4linux || true"),
}


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
    steps = "\n".join(STEPS[n].replace("{power_mode}", prof.power_mode or "0") for n in prof.firmware)
    enable = "systemctl enable edge-vad.service" + (
        "\nsystemctl enable edge-vad-jetson-clocks.service" if "jetson" in prof.firmware else "")
    script = INSTALL.format(bundle_id=bundle.id, profile=prof.name, extra=EXTRAS[prof.backend], steps=steps,
                            enable=enable).encode()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    root = out.name.removesuffix(".tar.gz").removesuffix(".tgz")
    with tarfile.open(out, "w:gz") as tar:
        tar.add(bundle.root, arcname=f"{root}/bundle")
        tar.add(profile_path(profile), arcname=f"{root}/profile.yaml")
        for name in prof.firmware:
            tar.add(FIRMWARE_DIR / name, arcname=f"{root}/firmware/{name}")
        info = tarfile.TarInfo(f"{root}/install.sh")
        info.size, info.mode = len(script), 0o755
        tar.addfile(info, io.BytesIO(script))
    log(f"{out}: bundle {bundle.id}, profile {prof.name}, firmware {', '.join(prof.firmware)}, install.sh")
    return out
