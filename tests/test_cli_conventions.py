"""What a shell user and a script expect of the CLI: --version, -h, completion, --json, clear range
errors, readable help, bare `status`, convert's progress, and messages that say what to do."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from edge_vad.demo import DEMO_CLIP, DEMO_LABELS, shipped_bundle
from edge_vad.profiles import list_profiles
from helpers import REPO, wait_until, write_clip

FIRMWARE = REPO / "firmware_configs" / "daemon"


def edge_vad(*args, cwd=REPO, env=None, timeout=300):
    return subprocess.run([sys.executable, str(REPO / "cli.py"), *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def error_line(proc) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory):
    """The demo clip's first 60 frames and their labels (one anomaly, frames 25-48)."""
    from edge_vad.data.frames import read_frames

    folder = tmp_path_factory.mktemp("clip")
    clip, labels = folder / "clip.avi", folder / "labels.npy"
    write_clip(clip, list(read_frames(DEMO_CLIP, 0, 60)))
    np.save(labels, np.load(DEMO_LABELS)[:60])
    return clip, labels


def test_version_and_short_help():
    from edge_vad import __version__

    proc = edge_vad("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"edge-vad {__version__}"
    for args in ([], ["profiles"], ["convert"]):
        short, long = edge_vad(*args, "-h"), edge_vad(*args, "--help")
        assert short.returncode == long.returncode == 0 and short.stdout == long.stdout
        assert "Usage: edge-vad" in short.stdout


def test_shell_completion_completes_commands():
    # typer finds the shell among the process's parents: run it from bash, as a user would.
    proc = subprocess.run(["bash", "-c", f"'{sys.executable}' '{REPO / 'cli.py'}' --show-completion"], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "_EDGE_VAD_COMPLETE" in proc.stdout, proc.stdout + proc.stderr
    env = {"PATH": "/usr/bin:/bin", "_EDGE_VAD_COMPLETE": "complete_bash", "COMP_WORDS": "edge-vad pro",
           "COMP_CWORD": "1"}
    proc = edge_vad(env=env)
    assert proc.returncode == 0 and proc.stdout.split() == ["profiles"], proc.stdout + proc.stderr


def test_help_shows_real_types_and_whole_option_names():
    proc = edge_vad("convert", "--help")  # piped, as into less or a file
    assert proc.returncode == 0
    out = proc.stdout
    for typer_label in ("<str>", "<bool>", "<path>", "<int>", "<float>"):
        assert typer_label not in out, typer_label
    assert "…" not in out  # nothing cut to fit 80 columns
    for shown in ("--accept-accuracy-drop", "--tune-labels", "TARGET", "fp32|fp16|int8", "PATH", "FLOAT", "INTEGER"):
        assert shown in out, shown
    assert "START:STOP" in edge_vad("train", "--help").stdout


def test_json_from_models_profiles_and_bench(short_clip):
    models = json.loads(edge_vad("models", "--json").stdout)
    assert {"stconvlstm", "hf2vad", "bisho", "protomem", "stmae"} <= {m["name"] for m in models}
    assert all(m["presets"]["edge"] for m in models)

    profiles = json.loads(edge_vad("profiles", "list", "--json").stdout)
    assert [p["name"] for p in profiles] == list_profiles()
    assert next(p for p in profiles if p["name"] == "rpi5")["target"] == "cpu"

    clip, _ = short_clip
    proc = edge_vad("bench", shipped_bundle("stconvlstm"), "--calib-data", clip, "--frames", "5", "--ops", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    (row,) = doc["rows"]
    assert (row["target"], row["precision"], row["status"]) == ("cpu", "fp32", "ok") and row["fps"] == 1000 / row["ms"]
    ops = doc["ops"]
    assert ops["backend"] == "onnxruntime" and ops["runs"] == 5 and ops["call_ms"] > 0
    # The operator times never add up to more than the model call they are part of.
    assert sum(ops["ms"].values()) <= ops["call_ms"] * (1 + 1e-9)


def test_config_validate_json_and_every_error_of_the_shipped_example():
    proc = edge_vad("config", "validate", FIRMWARE / "replay-file.yaml", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["ok"] and doc["device_id"] == "lab" and doc["cameras"][0]["name"] == "replay"

    # raspberry-pi.yaml names files of a real Pi: every one of them is reported, not just the first.
    path = FIRMWARE / "raspberry-pi.yaml"
    proc = edge_vad("config", "validate", path, "--json")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    errors = json.loads(proc.stdout)["errors"]
    assert [e.split(": ")[1] for e in errors] == ["broker.tls.ca_file", "broker.password_file",
                                                  "cameras[0].bundle (camera 'door')",
                                                  "cameras[1].bundle (camera 'garden')"], errors
    assert errors[0].startswith(f"{path}:9: ") and "/etc/edge-vad/ca.crt: no such file" in errors[0]
    text = edge_vad("config", "validate", path)
    assert text.returncode == 2 and "4 error(s)" in text.stderr and all(e in text.stderr for e in errors)


def test_run_still_refuses_a_missing_broker_file(tmp_path):
    """`config validate` lists missing files with the rest; `run` keeps refusing them before it starts."""
    cfg = tmp_path / "device.yaml"
    cfg.write_text(textwrap.dedent(f"""\
        device_id: box1
        broker: {{host: 127.0.0.1, username: edge, password_file: {tmp_path / 'missing.pw'}}}
        cameras:
          - name: door
            source: {DEMO_CLIP}
            bundle: {shipped_bundle('stconvlstm')}
        """))
    proc = edge_vad("run", "--config", cfg)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"broker: password_file {tmp_path / 'missing.pw'}: no such file" in proc.stderr


@pytest.mark.parametrize("args,message", [
    (["train", "--model", "stconvlstm", "--data", DEMO_CLIP, "--out", "x", "--frames", "400:100"],
     "--frames 400:100: the range is empty (STOP is excluded and must be greater than START); "
     "did you mean --frames 100:400?"),
    (["calibrate", "x", "--frames", "100:100"], "--frames 100:100: the range is empty"),
    (["calibrate", "x", "--frames", "-5:10"], "--frames -5:10: frame numbers start at 0"),
    (["calibrate", "x", "--frames", "4a"], "--frames '4a': expected START:STOP"),
    (["calibrate", "x", "--frames", "1:2:3"], "--frames '1:2:3': expected START:STOP"),
    (["make-testset", "--out", "x", "--start", "795", "--stop", "480"],
     "--start 795 --stop 480: the range is empty (STOP is excluded and must be greater than START); "
     "did you mean --start 480 --stop 795?"),
], ids=["reversed", "empty", "negative", "not-a-range", "three-parts", "make-testset"])
def test_bad_frame_ranges_name_the_flag(tmp_path, args, message):
    line = error_line(edge_vad(*args, cwd=tmp_path))
    assert line.startswith("error: ") and message in line, line


def test_bare_status_reads_the_state_dir_run_uses(tmp_path, mosquitto, short_clip):
    clip, _ = short_clip
    proc = edge_vad("status", cwd=tmp_path)
    assert "edge-vad-state/stats.json: no stats yet" in error_line(proc)
    run = edge_vad("run", "--bundle", shipped_bundle("stconvlstm"), "--source", clip, "--broker", mosquitto.url,
                   "--device-id", "box7", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "edge-vad-state" / "stats.json").exists()
    status = edge_vad("status", "--json", cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["device"] == "box7"


def test_listen_json_prints_each_event_as_one_json_line(mosquitto):
    from edge_vad.runtime.alerts.events import EventTracker
    from edge_vad.runtime.alerts.mqtt import AlertPublisher

    tracker = EventTracker("cam1", threshold=0.5, min_frames=1, device="dev1")
    (start,) = tracker.update(0, 1_700_000_000.0, 0.9)
    listener = subprocess.Popen([sys.executable, str(REPO / "cli.py"), "listen", "--broker", mosquitto.url,
                                 "--count", "1", "--timeout", "30", "--json"], cwd=REPO, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    try:
        with AlertPublisher(mosquitto.url, "dev1") as publisher:
            # No readiness signal in JSON mode: the same event (one msg_id, so counted once) is offered
            # until the listener has taken it and exited.
            def delivered() -> bool:
                publisher.publish_event(start)
                publisher.flush(5)
                return listener.poll() is not None

            assert wait_until(delivered, timeout=30, interval=0.2)
        out, err = listener.communicate(timeout=10)
    finally:
        listener.kill()
    assert listener.returncode == 0, err
    (line,) = out.splitlines()
    event = json.loads(line)
    assert (event["type"], event["camera"], event["id"]) == ("start", "cam1", start["id"])


def test_stage_progress_lines_and_live_line(capsys):
    from edge_vad.progress import StageProgress

    out = io.StringIO()
    with StageProgress("convert", out=out, live=False) as progress:
        progress.stage("exporting")
        progress.stage("parity PASS")
    lines = out.getvalue().splitlines()
    assert [line.split("] ", 1)[1] for line in lines] == ["exporting", "parity PASS"]
    assert all(line.startswith("[") and " s] " in line for line in lines)

    with StageProgress("convert", out=out, live=True, tick_s=0.01) as progress:
        progress.stage("exporting")
        ticker = progress._ticker
        assert ticker.is_alive()
    assert not ticker.is_alive()  # the clock stops with the command
    assert "convert stage 1: exporting" in capsys.readouterr().err


def test_convert_prints_its_stages(daemon_bundle, tmp_path):
    ckpt = daemon_bundle.parent / "ckpt"  # the tiny checkpoint the daemon tests trained
    proc = edge_vad("convert", ckpt, "--target", "cpu", "--out", tmp_path / "b", "--threads", "1")
    assert proc.returncode == 0, proc.stderr
    stages = [line for line in proc.stdout.splitlines() if line.startswith("[")]
    assert "exporting" in stages[0] and "parity PASS" in stages[1] and "bundle written" in stages[-1]


@pytest.mark.parametrize("target", ["openvino-cpu", "cpu"])
def test_a_parity_failure_names_the_limits_and_what_to_try(daemon_bundle, tmp_path, monkeypatch, target):
    import converters.parity
    from converters import convert
    from converters.targets import get_target
    from edge_vad.errors import EdgeVadError

    ok, why = get_target(target)[0].runnable_here()
    if not ok:
        pytest.skip(why)
    # Limits no engine can meet: a real conversion, refused by the real check.
    monkeypatch.setitem(converters.parity.TOLERANCES, "fp32", {"rel_error": 0.0, "map": 0.0, "score": -1.0})
    with pytest.raises(EdgeVadError) as info:
        convert(daemon_bundle.parent / "ckpt", target, tmp_path / "refused", threads=1, log=lambda *a: None)
    message = str(info.value)
    assert "parity FAIL" in message
    assert f"{target}/fp32 must stay within: error rel <= 0, error map <= 0, score delta <= -1 sigma" in message
    assert "Try another target" in message and not (tmp_path / "refused").exists()
