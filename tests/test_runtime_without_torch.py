"""The on-device runtime must import and score with torch unimportable."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from helpers import REPO

BLOCK_TORCH = textwrap.dedent(
    """
    import importlib.abc, sys

    class NoTorch(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ImportError("torch is blocked for this test")

    sys.meta_path.insert(0, NoTorch())
    """
)


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", BLOCK_TORCH + textwrap.dedent(code)],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )


def test_blocker_really_blocks_torch():
    proc = _run("import torch")
    assert proc.returncode != 0 and "blocked" in proc.stderr


def test_runtime_imports_and_scores_without_torch():
    proc = _run(
        """
        import edge_vad.runtime.daemon.scheduler, edge_vad.runtime.stream, edge_vad.runtime.alerts.mqtt
        import edge_vad.runtime.alerts.listen, edge_vad.runtime.alerts.events, edge_vad.runtime.capture.sources, edge_vad.benchmarking.op_profile
        from edge_vad.demo import DEMO_CLIP, shipped_bundle
        from edge_vad.data.frames import read_frames
        from edge_vad.runtime.bundle.loader import load_bundle
        from edge_vad.runtime.stream import CameraStream

        stream = CameraStream(load_bundle(shipped_bundle("stconvlstm")))
        results = [stream.step(f) for f in read_frames(DEMO_CLIP, 0, stream.warmup + 3)]
        assert results[-1].score == results[-1].score, "a real score after warm-up"
        from edge_vad.profiles import load_profile  # profiles are checked against converters' target table
        assert load_profile("jetson-orin-nano").target == "jetson"
        assert "torch" not in sys.modules
        print("ok", results[-1].score)
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ok")
