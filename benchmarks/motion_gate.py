"""Motion gating: CPU saved on still footage, and AUC with and without the gate.

    .venv/bin/python benchmarks/motion_gate.py [BUNDLE ...] [--threads 1]

Default bundles: the five shipped edge bundles. Two measurements per bundle, side by side in one run:

* **still footage**: 20 frames of vtest (warm-up), then 200 frames of one view of the
  plaza with fresh sensor noise on each (σ = 2 gray levels). CPU seconds per frame of
  ``CameraStream.step`` without and with the gate (``time.process_time``).
* **accuracy**: the test set (``runs/testset``, frames 480-794 with injected anomalies)
  with a still interlude spliced in. The test video always has walkers, so the gate alone
  would never close on it. The interlude is 100 copies of a normal frame, with noise,
  labelled normal, and is inserted where the 20 frames before and after are normal.
  Streaming AUC without and with the gate, and the share of frames the gate held.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge_vad.data.frames import read_frames  # noqa: E402
from edge_vad.data.labels import load_labels  # noqa: E402
from edge_vad.evaluation.evaluate import evaluate  # noqa: E402
from edge_vad.evaluation.scorers import Scores  # noqa: E402
from edge_vad.runtime.bundle.loader import load_bundle  # noqa: E402
from edge_vad.runtime.capture.motion_gate import MotionGate  # noqa: E402
from edge_vad.runtime.stream import CameraStream  # noqa: E402

VTEST = ROOT.parent / "shared" / "data" / "vtest.avi"
TESTSET = ROOT / "runs" / "testset"


def noisy(frame: np.ndarray, n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    base = frame.astype(np.float32)
    return [np.clip(base + rng.normal(0, 2.0, base.shape), 0, 255).astype(np.uint8) for _ in range(n)]


def run(bundle, frames, gate: bool, threads: int):
    stream = CameraStream(bundle, threads=threads, motion_gate=MotionGate() if gate else None)
    results, cpu = [], []
    for f in frames:
        c = time.process_time()
        results.append(stream.step(f))
        cpu.append(time.process_time() - c)
    return results, np.array(cpu)


def splice(frames: list, labels: np.ndarray, length: int = 100, margin: int = 20):
    at = next(i for i in range(len(frames) // 3, len(frames) - margin)
              if not labels[i - margin:i + margin].any())
    still = noisy(frames[at - 1], length, seed=1)
    return frames[:at] + still + frames[at:], np.concatenate([labels[:at], np.zeros(length, labels.dtype), labels[at:]]), at


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundles", nargs="*", type=Path)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    bundles = args.bundles or sorted((ROOT / "edge_vad" / "assets" / "bundles").iterdir())
    warm = list(read_frames(VTEST, 100, 120))
    still_clip = warm + noisy(warm[-1], 200)
    test_frames = list(read_frames(TESTSET / "vtest_anomalies.avi"))
    spliced, labels, at = splice(test_frames, load_labels(TESTSET / "labels.npy"))
    print(f"still clip: 20 + 200 frames; test set with a 100-frame still interlude at frame {at} "
          f"({len(spliced)} frames); threads {args.threads}\n")
    print("| bundle | still: CPU ms/frame, no gate | with gate | CPU saved | test AUC streaming, no gate | with gate | frames held |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for path in bundles:
        bundle = load_bundle(path)
        row = [path.name]
        cpu = {}
        for gate in (False, True):
            _, c = run(bundle, still_clip, gate, args.threads)
            cpu[gate] = c[40:].mean() * 1000  # after warm-up and the first still frames
        row += [f"{cpu[False]:.2f}", f"{cpu[True]:.2f}", f"{100 * (1 - cpu[True] / cpu[False]):.0f} %"]
        for gate in (False, True):
            results, _ = run(bundle, spliced, gate, args.threads)
            scores = Scores(path.name, np.array([r.error for r in results]), np.array([r.score for r in results]),
                            None, 0)
            row.append(f"{evaluate(scores, labels)['auc_stream']:.4f}")
            if gate:
                row.append(f"{np.mean([r.held for r in results]):.1%}")
        print("| " + " | ".join(row) + " |", flush=True)


if __name__ == "__main__":
    main()
