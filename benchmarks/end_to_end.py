"""Sustained frames per second of the whole daemon path, capture to alert, one camera.

    .venv/bin/python benchmarks/end_to_end.py [BUNDLE_DIR ...] [--video VIDEO] [--frames 0:480] [--threads 2]

Every frame goes through what ``edge-vad run`` does with a file: the capture thread decodes it,
the scheduler hands it over, preprocessing (hf2vad: background subtraction and DIS flow too),
the backend step, the streaming score, the event tracker, the durable outbox and MQTT QoS 1
delivery to a real broker (mosquitto when installed, else the embedded one). A file is read as
fast as the daemon takes it, so frames/s is the rate a camera could be served at.

The frames are a copy of the training range of vtest (0-479 by default, never the evaluation
frames), written once as MJPEG at full size (768×576), the codec most IP cameras send.
Defaults: every bundle shipped in ``edge_vad/assets/bundles``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from helpers import find_mosquitto, local_mosquitto  # noqa: E402

TARGET_FPS = 25.0


@contextlib.contextmanager
def broker():
    """A real broker: mosquitto if installed (as on a device), else the embedded one."""
    exe = find_mosquitto()
    if exe is None:
        from edge_vad.runtime.alerts.broker import EmbeddedBroker

        with EmbeddedBroker() as b:
            yield b.url, "embedded (amqtt)"
        return
    with local_mosquitto(exe) as port:
        yield f"mqtt://127.0.0.1:{port}", "mosquitto"


def write_clip(video: Path, start: int, stop: int, out: Path) -> int:
    import cv2

    from edge_vad.data.frames import read_frames, video_info

    info = video_info(video)
    writer = None
    n = 0
    for frame in read_frames(video, start, stop):
        if writer is None:
            h, w = frame.shape[:2]
            writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"MJPG"), info.fps, (w, h))
        writer.write(frame)
        n += 1
    if writer is not None:
        writer.release()
    return n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundles", nargs="*", type=Path)
    parser.add_argument("--video", type=Path, default=ROOT.parent / "shared" / "data" / "vtest.avi")
    parser.add_argument("--frames", default="0:480", help="START:STOP of the video to play (default: vtest's training range)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    from edge_vad.runtime.daemon.scheduler import run_camera

    bundles = args.bundles or sorted(p for p in (ROOT / "edge_vad" / "assets" / "bundles").glob("*-edge"))
    start, stop = (int(x) for x in args.frames.split(":"))
    with tempfile.TemporaryDirectory(prefix="edge-vad-e2e-") as tmp:
        clip = Path(tmp) / "clip.avi"
        n = write_clip(args.video, start, stop, clip)
        rows = []
        with broker() as (url, kind):
            for bundle in bundles:
                t0 = time.process_time()
                summary = run_camera(bundle, str(clip), "bench", url, device_id="bench", threads=args.threads)
                cpu = time.process_time() - t0
                events = sum(e["type"] == "start" for e in summary.events)
                rows.append((bundle.name, summary.frames, summary.seconds, summary.fps, cpu / max(summary.frames, 1) * 1e3,
                             events, len(summary.events)))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{n} frames of {args.video} ({args.frames}), MJPEG 768×576 | threads {args.threads} | broker {kind} | "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs, load avg {load:.2f} at the end")
    print()
    print("| bundle | frames scored | seconds | FPS end to end | ms/frame | CPU ms/frame (all threads) | events | messages | ≥ 25 FPS |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for name, frames, seconds, fps, cpu_ms, events, msgs in rows:
        print(f"| {name} | {frames} | {seconds:.1f} | {fps:.1f} | {1000 / fps if fps else float('nan'):.1f} | {cpu_ms:.1f} | "
              f"{events} | {msgs} | {'yes' if fps >= TARGET_FPS else 'no'} |")


if __name__ == "__main__":
    main()
