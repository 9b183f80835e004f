"""OpenVINO: the model call with fixed input shapes (what the backend runs) against the dynamic-batch model.

    .venv/bin/python benchmarks/openvino_shapes.py OPENVINO_BUNDLE [...] [--threads 2] [--calls 300] [--batch 1,4]

OpenVINO bundles come from ``edge-vad convert CKPT --target openvino-cpu`` (``edge-vad bench --speed
--out DIR`` leaves one per checkpoint in DIR/NAME/openvino-cpu-fp32). For each bundle and batch size,
the same random inputs go through ``OpenVinoBackend`` (a model compiled for that batch size) and
through the bundle's dynamic-batch model compiled as is, alternating call by call; the table gives the
median ms per call and the largest output difference.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge_vad.runtime.backends.openvino import OpenVinoBackend, inference_config  # noqa: E402
from edge_vad.runtime.bundle.loader import load_bundle  # noqa: E402


def feeds_for(bundle, n: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    feeds = {i.name: rng.random((n, *i.shape[1:]), dtype=np.float32) * 0.1 for i in bundle.manifest.graph.inputs}
    motion = bundle.manifest.input.motion or ""
    if motion.startswith("objects"):  # two boxes, so the object networks run
        frame = feeds[bundle.manifest.graph.frame_input]
        first = frame.shape[1] - int(motion.split(":")[1])
        frame[:, first:] = 0
        frame[:, first, 20:50, 30:60] = 1
        frame[:, first + 1, 60:90, 90:120] = 1
    return feeds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("bundles", nargs="+", type=Path)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--batch", default="1,4")
    args = ap.parse_args()
    import openvino as ov

    print(f"OpenVINO {ov.get_version()} | CPU, {args.threads} threads | median of {args.calls} calls each, "
          "alternating\n")
    print("| bundle | batch | dynamic-batch model ms | fixed shapes ms | speed-up | max output diff |")
    print("|---|---:|---:|---:|---:|---:|")
    for path in args.bundles:
        bundle = load_bundle(path)
        fixed = OpenVinoBackend(bundle.graph_path, threads=args.threads, precision=bundle.manifest.target.precision,
                                inference_precision=bundle.manifest.target.inference_precision)
        config = inference_config("CPU", fixed.inference_precision, args.threads)
        dynamic = OpenVinoBackend(compiled=ov.Core().compile_model(str(bundle.graph_path), "CPU", config))
        for n in (int(b) for b in args.batch.split(",")):
            feeds = feeds_for(bundle, n)
            for _ in range(10):
                fixed.run(feeds)
                dynamic.run(feeds)
            tf, td = [], []
            for i in range(args.calls):
                for backend, acc in ((fixed, tf), (dynamic, td)) if i % 2 else ((dynamic, td), (fixed, tf)):
                    t = time.perf_counter()
                    backend.run(feeds)
                    acc.append(time.perf_counter() - t)
            a, b = fixed.run(feeds), dynamic.run(feeds)
            diff = max(float(np.abs(a[k] - b[k]).max()) for k in a)
            d, f = 1000 * float(np.median(td)), 1000 * float(np.median(tf))
            name = f"{bundle.manifest.model.name}-{bundle.manifest.model.preset}"
            print(f"| {name} | {n} | {d:.3f} | {f:.3f} | {d / f:.2f}× | {diff:.1e} |")


if __name__ == "__main__":
    main()
