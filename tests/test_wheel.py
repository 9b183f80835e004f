"""The built wheel in a clean virtual environment, as a device gets it: runtime dependencies only.

The wheel is built from the files a clone has (tracked, or new and not ignored), installed with pip into
a fresh venv (the base dependencies come through this machine's pip configuration), and then used from
outside the checkout: profiles, firmware configs and bundles must come from the installed package.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from helpers import REPO, write_clip

pytestmark = pytest.mark.slow


def _sh(*args, cwd=None, timeout=600, **kw):
    return subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=timeout, **kw)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    root = tmp_path_factory.mktemp("wheel")
    files = _sh("git", "ls-files", "-co", "--exclude-standard", "-z", cwd=REPO).stdout.split("\0")
    src = root / "src"
    for name in filter(None, files):
        if (REPO / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, src / name)
    # This interpreter's setuptools builds it (no index needed for build isolation).
    built = _sh(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", root / "dist",
                src)
    assert built.returncode == 0, built.stderr
    (wheel,) = (root / "dist").glob("edge_vad-*.whl")
    venv = root / "venv"
    assert _sh(sys.executable, "-m", "venv", venv).returncode == 0
    pip = _sh(venv / "bin" / "python", "-m", "pip", "install", "-q", wheel)
    assert pip.returncode == 0, pip.stderr
    return venv


def run_installed(venv, *args, cwd):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return _sh(venv / "bin" / "edge-vad", *args, cwd=cwd, env=env, timeout=300)


def installed_path(venv, expr: str, cwd) -> str:
    proc = _sh(venv / "bin" / "python", "-c", f"import edge_vad.demo, edge_vad.shipped; print({expr})", cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_the_wheel_installs_the_runtime_without_torch(installed, tmp_path):
    proc = _sh(installed / "bin" / "python", "-c", "import edge_vad, importlib.util as u; "
               "print(edge_vad.__file__, u.find_spec('torch') is None)", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    location, no_torch = proc.stdout.split()
    assert location.startswith(str(installed)) and no_torch == "True"


def test_profiles_and_firmware_configs_ship_in_the_wheel(installed, tmp_path):
    from edge_vad.profiles import list_profiles

    proc = run_installed(installed, "profiles", "list", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert [p["name"] for p in json.loads(proc.stdout)] == list_profiles()
    shown = run_installed(installed, "profiles", "show", "rpi5", cwd=tmp_path)
    assert shown.returncode == 0 and "target: cpu" in shown.stdout

    daemon = installed_path(installed, "edge_vad.shipped.shipped_dir('firmware_configs') / 'daemon'", tmp_path)
    assert daemon.startswith(str(installed))
    for example in ("raspberry-pi.yaml", "jetson.yaml"):
        # Written for a device's own files (/etc, /opt): validating here lists every one that is missing.
        proc = run_installed(installed, "config", "validate", f"{daemon}/{example}", "--json", cwd=tmp_path)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        errors = json.loads(proc.stdout)["errors"]
        assert len(errors) == 4 and all(e.startswith(f"{daemon}/{example}") for e in errors), errors


def test_a_shipped_bundle_scores_and_runs_from_the_wheel(installed, tmp_path, mosquitto):
    from edge_vad.data.frames import read_frames
    from edge_vad.demo import DEMO_CLIP, DEMO_LABELS

    bundle = installed_path(installed, "edge_vad.demo.shipped_bundle('stconvlstm')", tmp_path)
    clip_installed = installed_path(installed, "edge_vad.demo.DEMO_CLIP", tmp_path)
    assert bundle.startswith(str(installed)) and clip_installed.startswith(str(installed))
    clip, labels = tmp_path / "clip.avi", tmp_path / "labels.npy"
    write_clip(clip, list(read_frames(DEMO_CLIP, 0, 60)))
    np.save(labels, np.load(DEMO_LABELS)[:60])

    scored = run_installed(installed, "eval", bundle, "--video", clip, "--labels", labels, "--json", cwd=tmp_path)
    assert scored.returncode == 0, scored.stderr
    assert json.loads(scored.stdout)["frames"] > 40

    config = tmp_path / "device.yaml"
    config.write_text(textwrap.dedent(f"""\
        device_id: wheel-box
        broker: {{host: {mosquitto.host}, port: {mosquitto.port}}}
        cameras:
          - name: door
            source: {clip}
            bundle: {bundle}
            profile: rpi5
        """))
    assert run_installed(installed, "config", "validate", config, cwd=tmp_path).returncode == 0
    ran = run_installed(installed, "run", "--config", config, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert "door: 60 frames" in ran.stdout and "all messages acknowledged" in ran.stdout

    needs_torch = run_installed(installed, "train", "--model", "stconvlstm", "--data", clip, "--out", tmp_path / "c",
                                cwd=tmp_path)
    assert needs_torch.returncode == 2 and "Traceback" not in needs_torch.stderr
    assert "pip install torch==" in needs_torch.stderr  # the requirements, read from the installed metadata
