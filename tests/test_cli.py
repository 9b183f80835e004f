"""The CLI as a user meets it: real subprocesses, real files, no tracebacks for mistakes."""

from __future__ import annotations

import json
import subprocess
import sys

from edge_vad.demo import DEMO_CLIP, DEMO_LABELS
from helpers import REPO


def edge_vad(*args, timeout=300):
    return subprocess.run([sys.executable, str(REPO / "cli.py"), *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


def test_eval_framediff_json_and_report(tmp_path):
    proc = edge_vad("eval", "framediff", "--video", DEMO_CLIP, "--labels", DEMO_LABELS, "--json", "--report", tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert {"auc_stream", "auc_offline", "eer", "frames"} <= set(result)
    assert result["frames"] == 314 and 0.5 < result["auc_stream"] <= 1.0
    for name in ("roc.png", "timeline.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_user_mistakes_get_one_clear_line_and_exit_2(tmp_path):
    cases = [
        (("eval", "framediff", "--video", tmp_path / "missing.avi", "--labels", DEMO_LABELS), "missing.avi: no such video"),
        (("eval", tmp_path, "--video", DEMO_CLIP, "--labels", DEMO_LABELS), "not a checkpoint directory, a bundle, or 'framediff'"),
        (("train", "--model", "stconvlst", "--data", DEMO_CLIP, "--out", tmp_path / "x"), "Did you mean 'stconvlstm'"),
        (("train", "--model", "stconvlstm", "--preset", "huge", "--data", DEMO_CLIP, "--out", tmp_path / "x"), "no preset 'huge'"),
        (("convert", tmp_path, "--target", "cpu", "--out", tmp_path / "b"), "not a checkpoint directory"),
        (("convert", tmp_path, "--target", "toaster", "--out", tmp_path / "b"), "unknown target 'toaster'"),
        (("run", "--bundle", tmp_path, "--source", DEMO_CLIP), "not a bundle (no manifest.json)"),
    ]
    for args, message in cases:
        proc = edge_vad(*args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert message in proc.stderr, (args, proc.stderr)
        assert "Traceback" not in proc.stderr, (args, proc.stderr)
