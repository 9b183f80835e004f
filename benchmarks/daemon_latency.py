"""Frame latency vs budget, and the daemon's overhead over bare inference, for 1, 2 and 4 cameras.

    .venv/bin/python benchmarks/daemon_latency.py --bundle BUNDLE_DIR [--seconds 20] [--fps 10]

Each camera is an in-process source delivering real vtest frames (768×576) in
real time at the model's frame rate; the daemon runs its full path (capture
thread, scheduler, batched backend call, streaming score, event tracker,
durable outbox, stats) against a local mosquitto. "Bare" is the same backend
call on the same frames at the same pace (``step_batch`` over N cameras every
1/fps s, no daemon).
Overhead = daemon CPU seconds per scored frame / bare CPU seconds per frame − 1, both in steady state:
bare after 10 warm-up rounds, the daemon from its 10th scored round to its last scored frame (start-up
and shutdown happen once per daemon, not per frame; the CPU is sampled every 50 ms while it runs).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from daemon_helpers import FrameReader  # noqa: E402
from helpers import find_mosquitto, local_mosquitto  # noqa: E402


def bare(bundle_dir: Path, frames: list, n: int, threads: int, fps: float, count: int) -> float:
    from edge_vad.runtime.bundle.loader import load_bundle
    from edge_vad.runtime.stream import CameraStream, step_batch

    import cv2

    cv2.setNumThreads(threads)  # as the daemon does with a device-level `threads`
    bundle = load_bundle(bundle_dir)
    first = CameraStream(bundle, threads=threads)
    streams = [first] + [CameraStream(bundle, backend=first.backend) for _ in range(n - 1)]
    for f in frames[:10]:
        step_batch(streams, [f] * n)
    # Paced like the cameras: a step every 1/fps s, so caches and clocks are in the
    # same state as in the daemon (a hot loop would flatter the bare number).
    c0 = time.process_time()
    t = time.monotonic()
    for k in range(count):
        step_batch(streams, [frames[(k + 7 * i) % len(frames)] for i in range(n)])
        t += 1.0 / fps
        time.sleep(max(0.0, t - time.monotonic()))
    return (time.process_time() - c0) / (count * n)


def daemon_run(bundle_dir: Path, frames: list, n: int, seconds: float, fps: float, port: int, threads: int) -> dict:
    from edge_vad.runtime.daemon.config import parse_config
    from edge_vad.runtime.daemon.scheduler import Daemon

    state = Path(tempfile.mkdtemp())
    cams = [{"name": f"cam{i}", "source": "in-process", "bundle": str(bundle_dir), "realtime": True}
            for i in range(n)]
    cfg = parse_config(json.dumps({"device_id": "bench", "broker": {"host": "127.0.0.1", "port": port},
                                   "state": {"dir": str(state)}, "threads": threads, "cameras": cams}))
    count = int(seconds * fps)
    sources = {f"cam{i}": FrameReader([frames[(k + 7 * i) % len(frames)] for k in range(count)], fps=fps)
               for i in range(n)}
    daemon = Daemon(cfg, sources=sources)
    marks = []  # (frames scored, process CPU seconds), sampled while the daemon runs
    done = threading.Event()

    def watch():
        while not done.wait(0.05):
            marks.append((sum(c.stats.processed for c in getattr(daemon, "cameras", [])), time.process_time()))

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    daemon.run(install_signals=False)
    done.set()
    watcher.join()
    # Steady state, as for bare: from the 10th scored round to the last frame scored. Start-up (bundle
    # load, engine session, broker connect) and shutdown (outbox flush) happen once per daemon, not per frame.
    first = next(m for m in marks if m[0] >= 10 * n)
    last = next(m for m in marks if m[0] == marks[-1][0])
    cpu, scored = last[1] - first[1], last[0] - first[0]
    lat = np.concatenate([np.fromiter(c.stats.latencies, float) for c in daemon.cameras]) * 1000
    processed = sum(c.stats.processed for c in daemon.cameras)
    steps = np.concatenate([np.fromiter(c.stats.steps, float) for c in daemon.cameras])
    shutil.rmtree(state, ignore_errors=True)
    return {"processed": processed, "cpu_per_frame": cpu / max(scored, 1), "step": float(np.mean(steps)),
            "p50": float(np.percentile(lat, 50)), "p99": float(np.percentile(lat, 99)),
            "budget_ms": daemon.cameras[0].stats.budget_ms,
            "late": sum(c.stats.late for c in daemon.cameras),
            "skipped": sum(c.stats.skipped_cadence + c.capture.counters.dropped for c in daemon.cameras)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", type=Path, required=True)
    ap.add_argument("--video", type=Path, default=ROOT.parent / "shared" / "data" / "vtest.avi")
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--fps", type=float, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cameras", default="1,2,4")
    args = ap.parse_args()

    from edge_vad.data.frames import read_frames

    frames = [np.ascontiguousarray(f) for f in read_frames(args.video, 0, 100)]
    exe = find_mosquitto()
    if exe is None:
        raise SystemExit("mosquitto is not installed; install it with: sudo apt-get install -y mosquitto")
    with local_mosquitto(exe) as port:
        print(f"{'cameras':>7} {'budget ms':>9} {'p50 ms':>7} {'p99 ms':>7} {'late':>5} {'skipped':>7} "
              f"{'bare ms/frame':>13} {'daemon ms/frame':>15} {'overhead':>8}")
        for n in [int(x) for x in args.cameras.split(",")]:
            b = bare(args.bundle, frames, n, args.threads, args.fps, int(args.seconds * args.fps))
            d = daemon_run(args.bundle, frames, n, args.seconds, args.fps, port, args.threads)
            over = d["cpu_per_frame"] / b - 1
            print(f"{n:>7} {d['budget_ms']:>9.0f} {d['p50']:>7.1f} {d['p99']:>7.1f} {d['late']:>5} {d['skipped']:>7} "
                  f"{b * 1000:>13.2f} {d['cpu_per_frame'] * 1000:>15.2f} {over:>8.1%}")


if __name__ == "__main__":
    threading.current_thread().name = "bench"
    main()
