"""Area downscaling: OpenCV's INTER_AREA against ``edge_vad.data.resize.area_resize``, and what
it does to each shipped model's whole preprocessing.

    .venv/bin/python benchmarks/resize.py [--threads 1] [--frames 60]

Side by side in one run, on vtest frames (768×576), alternating the two paths frame by frame:

* **resize**: every (size, colour) the shipped edge bundles resize to, ms per call (median), the
  largest difference in grey levels and the share of pixels that differ;
* **preprocessing**: each shipped bundle's ``FramePreprocessor`` (appearance, flow, boxes: what
  the runtime does before the model), ms per frame with ``area_resize`` and with OpenCV's resize
  patched in its place, and the largest difference of the model input it produces.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge_vad.data import motion, preprocess  # noqa: E402
from edge_vad.data.frames import read_frames  # noqa: E402
from edge_vad.data.resize import area_resize  # noqa: E402
from edge_vad.runtime.bundle import load_bundle  # noqa: E402

VTEST = ROOT.parent / "shared" / "data" / "vtest.avi"
BUNDLES = ROOT / "edge_vad" / "assets" / "bundles"


def opencv_area(img, size):
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA)


def sizes_of(bundles) -> list[tuple[int, int]]:
    out = []
    for b in bundles:
        spec = b.manifest.input
        out.append((spec.width, spec.height))
        if spec.motion:
            out.append((spec.width * motion.FLOW_UPSCALE, spec.height * motion.FLOW_UPSCALE))
    return list(dict.fromkeys(out))


def time_pair(a, b, inputs) -> tuple[float, float]:
    ta, tb = [], []
    for i, x in enumerate(inputs):
        # Who goes first swaps every frame: the second call finds the frame in cache.
        pair = ((a, ta), (b, tb)) if i % 2 else ((b, tb), (a, ta))
        for fn, acc in pair:
            t = time.perf_counter()
            fn(x)
            acc.append(time.perf_counter() - t)
    return 1000 * float(np.median(ta)), 1000 * float(np.median(tb))


def patched(fn):
    """Run the preprocessing with OpenCV's resize in area_resize's place (the code before it)."""
    saved = preprocess.area_resize, motion.area_resize
    preprocess.area_resize = motion.area_resize = opencv_area
    try:
        return fn()
    finally:
        preprocess.area_resize, motion.area_resize = saved


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1, help="OpenCV threads (the daemon sets the device's)")
    ap.add_argument("--frames", type=int, default=60)
    args = ap.parse_args()
    cv2.setNumThreads(args.threads)
    frames = [np.ascontiguousarray(f) for f in read_frames(VTEST, 0, args.frames)]
    bundles = [load_bundle(p) for p in sorted(BUNDLES.iterdir()) if (p / "manifest.json").exists()]
    print(f"{len(frames)} vtest frames {frames[0].shape[1]}×{frames[0].shape[0]} | OpenCV {cv2.__version__}, "
          f"{args.threads} thread(s) | median ms per call, the two paths alternating frame by frame\n")

    print("| size | colour | INTER_AREA ms | area_resize ms | speed-up | max diff | pixels that differ |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for size in sizes_of(bundles):
        for colour, inputs in (("gray", [cv2.cvtColor(f, cv2.COLOR_BGR2GRAY) for f in frames]), ("bgr", frames)):
            a, b = time_pair(lambda x: opencv_area(x, size), lambda x: area_resize(x, size), inputs)
            d = np.concatenate([np.abs(opencv_area(x, size).astype(int) - area_resize(x, size).astype(int)).ravel()
                                for x in inputs])
            print(f"| {size[0]}×{size[1]} | {colour} | {a:.3f} | {b:.3f} | {a / b:.2f}× | {d.max()} | "
                  f"{100 * (d > 0).mean():.3f} % |")

    print("\n| bundle | input | preprocessing ms (INTER_AREA) | preprocessing ms (area_resize) | saved ms/frame | "
          "max input diff |")
    print("|---|---|---:|---:|---:|---:|")
    for b in bundles:
        spec = b.manifest.input
        new, old = preprocess.FramePreprocessor(spec), patched(lambda: preprocess.FramePreprocessor(spec))
        ta, tb, diff = [], [], 0.0
        for i, f in enumerate(frames):
            out = {}
            pair = (("old", ta), ("new", tb)) if i % 2 else (("new", tb), ("old", ta))
            for which, acc in pair:
                t = time.perf_counter()
                out[which] = patched(lambda: old(f)) if which == "old" else new(f)
                acc.append(time.perf_counter() - t)
            diff = max(diff, float(np.abs(out["old"] - out["new"]).max()))
        a, c = 1000 * float(np.median(ta[5:])), 1000 * float(np.median(tb[5:]))
        print(f"| {b.manifest.model.name}-{b.manifest.model.preset} | {spec.width}×{spec.height} {spec.color}"
              f"{' + ' + spec.motion if spec.motion else ''} | {a:.3f} | {c:.3f} | {a - c:.3f} | {diff:.4f} |")


if __name__ == "__main__":
    main()
