"""Every CLI command where optional extras cannot be imported, as on a runtime-only device install.

The list of commands comes from the typer app itself: a new command fails here until it says how it is
invoked and whether it needs an extra. A command that needs none exits 0; one that needs a missing extra
prints one line with the exact install command and exits 2; none prints a traceback.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import textwrap

import pytest

from edge_vad.demo import DEMO_CLIP, DEMO_LABELS, shipped_bundle
from edge_vad.extras import OPTIONAL_MODULES, install_command
from helpers import REPO

# Put first on PYTHONPATH: Python imports it at start-up, before the CLI, and every listed module then
# behaves as an absent one: importing it raises ModuleNotFoundError with its name, probing it with
# importlib.util.find_spec gives None. Each attempted import is noted in EDGE_VAD_TEST_TRIED.
SITECUSTOMIZE = textwrap.dedent(
    """
    import importlib.abc, importlib.util, os, sys

    BLOCKED = set(filter(None, os.environ.get("EDGE_VAD_TEST_BLOCK", "").split(",")))
    TRIED = os.environ.get("EDGE_VAD_TEST_TRIED")

    def _blocked(name):
        return name.split(".")[0] in BLOCKED

    class Absent(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if _blocked(name):
                if TRIED:
                    with open(TRIED, "a") as f:
                        f.write(name.split(".")[0] + "\\n")
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)

    _find_spec = importlib.util.find_spec
    importlib.util.find_spec = lambda name, package=None: None if _blocked(name) else _find_spec(name, package)
    sys.meta_path.insert(0, Absent())
    """
)

RUNTIME_ONLY = sorted(OPTIONAL_MODULES)  # what `pip install .` without extras lacks


def leaf_commands() -> set[str]:
    import typer.main

    import cli

    def walk(command, prefix):
        subs = getattr(command, "commands", None)
        if not subs:
            return {prefix}
        return set().union(*(walk(c, f"{prefix} {name}".strip()) for name, c in subs.items()))

    return walk(typer.main.get_command(cli.app), "")


@pytest.fixture(scope="module")
def blocker(tmp_path_factory):
    folder = tmp_path_factory.mktemp("blocker")
    (folder / "sitecustomize.py").write_text(SITECUSTOMIZE)
    return folder


def edge_vad(blocker, blocked, *args, tried=None, timeout=300):
    env = {**os.environ, "PYTHONPATH": str(blocker), "EDGE_VAD_TEST_BLOCK": ",".join(blocked),
           "EDGE_VAD_TEST_TRIED": str(tried or "")}
    return subprocess.run([sys.executable, str(REPO / "cli.py"), *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def assert_install_line(proc, extra: str, package: str):
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    assert f"needs {package}, which is not installed (the '{extra}' extra): {install_command(extra)}" in errors[0]
    assert errors[0].endswith(install_command(extra)), errors[0]  # the command ends the line: copy-paste ready


def test_the_blocker_makes_a_module_absent(blocker, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(blocker), "EDGE_VAD_TEST_BLOCK": "torch",
           "EDGE_VAD_TEST_TRIED": str(tmp_path / "tried")}
    probe = "import importlib.util as u; assert u.find_spec('torch') is None and u.find_spec('numpy'); import torch"
    proc = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "ModuleNotFoundError: No module named 'torch'" in proc.stderr, proc.stderr
    assert (tmp_path / "tried").read_text() == "torch\n"


def test_install_command_is_the_extras_own_requirements():
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    for extra, reqs in project["optional-dependencies"].items():
        assert shlex.split(install_command(extra)) == ["pip", "install", *reqs], extra
    # Every module the CLI maps to an extra is really in that extra's requirements.
    names = {"sklearn": "scikit-learn", "cuda": "cuda-python"}
    for module, extra in OPTIONAL_MODULES.items():
        assert any(r.startswith(names.get(module, module)) for r in project["optional-dependencies"][extra]), module


def test_every_command_in_a_runtime_only_install(blocker, tmp_path, mosquitto):
    import numpy as np

    from edge_vad.data.frames import read_frames
    from helpers import write_clip

    from tensorrt_bundle import tensorrt_bundle

    bundle = shipped_bundle("stconvlstm")
    # 60 frames of the demo clip, one labelled anomaly (frames 25-48) inside: enough to score, quick to run.
    clip, labels = tmp_path / "clip.avi", tmp_path / "labels.npy"
    write_clip(clip, list(read_frames(DEMO_CLIP, 0, 60)))
    np.save(labels, np.load(DEMO_LABELS)[:60])
    config = tmp_path / "device.yaml"
    config.write_text(textwrap.dedent(f"""\
        device_id: box1
        broker: {{host: {mosquitto.host}, port: {mosquitto.port}}}
        cameras:
          - name: door
            source: {clip}
            bundle: {bundle}
            profile: rpi5
        state: {{dir: {tmp_path / 'state'}}}
        """))
    train_line = ("train", "torch")
    # command -> (arguments, None for exit 0 or (extra, package) for the install line); in this order.
    cases = {
        "models": (["models"], None),
        "profiles list": (["profiles", "list"], None),
        "profiles show": (["profiles", "show", "rpi5"], None),
        "config validate": (["config", "validate", config], None),
        "run": (["run", "--config", config], None),
        "status": (["status", "--config", config], None),
        "listen": (["listen", "--broker", mosquitto.url, "--timeout", "0.2"], None),
        "eval": (["eval", bundle, "--video", clip, "--labels", labels], None),
        "bench": (["bench", bundle, "--calib-data", DEMO_CLIP, "--frames", "3"], None),
        "package": (["package", bundle, "--profile", "rpi5", "--out", tmp_path / "deploy.tar.gz"], None),
        "make-testset": (["make-testset", "--video", DEMO_CLIP, "--out", tmp_path / "set", "--validation",
                          "--start", "0", "--stop", "100", "--parts", "moving"], None),
        "train": (["train", "--model", "stconvlstm", "--data", DEMO_CLIP, "--out", tmp_path / "ckpt"], train_line),
        "calibrate": (["calibrate", tmp_path / "ckpt", "--data", DEMO_CLIP], train_line),
        "convert": (["convert", tmp_path / "ckpt", "--target", "cpu", "--out", tmp_path / "b"], train_line),
        "build-engine": (["build-engine", tensorrt_bundle(tmp_path)[0]], ("tensorrt", "tensorrt")),
        "demo": (["demo", "--out", tmp_path / "demo"], ("demo", "amqtt")),
    }
    assert set(cases) == leaf_commands(), "every command needs a case here"
    out = {}
    for name, (args, needs) in cases.items():
        tried = tmp_path / f"tried-{name.replace(' ', '-')}"
        proc = out[name] = edge_vad(blocker, RUNTIME_ONLY, *args, tried=tried)
        if needs is None:
            assert proc.returncode == 0, (name, proc.stdout, proc.stderr)
            assert "Traceback" not in proc.stderr, (name, proc.stderr)
            # Not even tried and caught: a runtime command has no use for torch.
            assert "torch" not in (tried.read_text().split() if tried.exists() else []), name
        else:
            assert_install_line(proc, *needs)
    assert "door: 60 frames" in out["run"].stdout and "AUC streaming" in out["eval"].stdout  # they really scored


def test_every_command_helps_without_extras(blocker):
    """`-h` imports nothing optional: one process runs every command's help in turn."""
    driver = textwrap.dedent("""
        import contextlib, io, sys
        import cli
        for words in sys.argv[1:]:
            sys.argv = ["edge-vad", *words.split(), "-h"]
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                try:
                    cli.main()
                    code = 0
                except SystemExit as exc:
                    code = exc.code or 0
            assert code == 0 and "Usage: edge-vad" in out.getvalue(), (words, code, out.getvalue())
        print("helped ok")
        """)
    env = {**os.environ, "PYTHONPATH": f"{blocker}{os.pathsep}{REPO}", "EDGE_VAD_TEST_BLOCK": ",".join(RUNTIME_ONLY)}
    proc = subprocess.run([sys.executable, "-c", driver, *sorted(leaf_commands())], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "helped ok" in proc.stdout, proc.stderr


@pytest.mark.parametrize("blocked,args,needs", [
    ("openvino", ["convert", "CKPT", "--target", "openvino-cpu", "--out", "B"], ("openvino", "openvino")),
    ("nncf", ["convert", "CKPT", "--target", "openvino-cpu", "--precision", "int8", "--out", "B"], ("openvino", "nncf")),
    ("tensorrt", ["build-engine", "TRT_BUNDLE"], ("tensorrt", "tensorrt")),
    ("picamera2", ["run", "--bundle", "BUNDLE", "--source", "picamera2", "--broker", "mqtt://127.0.0.1:9"],
     ("picamera", "picamera2")),
    ("matplotlib", ["eval", "framediff", "--video", "CLIP", "--labels", "LABELS", "--report", "OUT"],
     ("demo", "matplotlib")),
    ("amqtt", ["demo", "--out", "OUT"], ("demo", "amqtt")),
], ids=lambda v: v if isinstance(v, str) else None)
def test_each_missing_extra_alone_names_its_install_command(blocker, tmp_path, blocked, args, needs):
    """torch present, one extra absent: the command that needs it says which and how to install it."""
    from tensorrt_bundle import tensorrt_bundle

    names = {"CKPT": tmp_path / "ckpt", "B": tmp_path / "b", "BUNDLE": shipped_bundle("stconvlstm"),
             "CLIP": DEMO_CLIP, "LABELS": DEMO_LABELS, "OUT": tmp_path / "out"}
    if "TRT_BUNDLE" in args:
        names["TRT_BUNDLE"] = tensorrt_bundle(tmp_path)[0]
    assert_install_line(edge_vad(blocker, [blocked], *[names.get(a, a) for a in args]), *needs)
