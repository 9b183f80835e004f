"""Scores of every shipped bundle through the daemon, for comparing one machine with another (benchmarks/arm64_check.sh).

    python benchmarks/arm64_scores.py frames DIR                 # the demo clip decoded into DIR/NNNN.png
    python benchmarks/arm64_scores.py run DIR BROKER_URL OUT.json  # every bundle through the daemon on DIR
    python benchmarks/arm64_scores.py compare A.json B.json        # per bundle: largest score/error difference

``run`` drives the daemon (``edge_vad.runtime.daemon.scheduler.Daemon``, what ``edge-vad run`` runs) with the
PNG frames as its source, events over MQTT to BROKER_URL, a subscriber counting what arrives. Frames come from
PNGs so that both machines score the same pixels: OpenCV wheels of different architectures decode MJPEG a
little differently. Needs only the runtime (no torch), so it runs from an installed wheel.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np


def decode_frames(out: Path) -> None:
    from edge_vad.data.frames import read_frames
    from edge_vad.demo import DEMO_CLIP

    out.mkdir(parents=True)
    for i, frame in enumerate(read_frames(DEMO_CLIP)):
        cv2.imwrite(str(out / f"{i:04d}.png"), frame)
    print(f"{out}: {i + 1} frames of {DEMO_CLIP.name}")


class PngFolder:
    """An in-process camera (read/release/fps, what the daemon's capture opens) over a folder of PNGs."""

    fps = 25.0

    def __init__(self, folder: Path):
        self.files = sorted(folder.glob("*.png"))
        self.next = 0

    def read(self):
        if self.next >= len(self.files):
            return False, None
        image = cv2.imread(str(self.files[self.next]), cv2.IMREAD_COLOR)
        self.next += 1
        return image is not None, image

    def release(self) -> None:
        pass


def versions() -> dict:
    import onnxruntime

    return {"machine": platform.machine(), "python": platform.python_version(), "numpy": np.__version__,
            "opencv": cv2.__version__, "onnxruntime": onnxruntime.__version__}


def run_all(frames: Path, broker: str, out: Path, only: list[str] | None = None) -> None:
    from edge_vad.runtime.alerts.listen import Listener
    from edge_vad.runtime.daemon.config import config_from_flags
    from edge_vad.runtime.daemon.scheduler import Daemon
    from edge_vad.demo import ASSETS

    report = {"versions": versions(), "frames": str(frames), "bundles": {}}
    for bundle in sorted((ASSETS / "bundles").glob("*-edge")):
        if only and bundle.name.removesuffix("-edge") not in only:
            continue
        steps = []
        camera = f"{bundle.name}-{report['versions']['machine']}"
        with tempfile.TemporaryDirectory() as state, Listener(broker, prefix="edge-vad-arm64", out=None) as listener:
            cfg = config_from_flags(bundle, str(frames), camera, broker, "edge-vad-arm64", "arm64-check", state, None)
            daemon = Daemon(cfg, sources={camera: PngFolder(frames)},
                            on_step=lambda _name, r: steps.append((r.index, r.error, r.score)))
            t0 = time.perf_counter()
            summary = daemon.run(install_signals=False)[camera]
            wall = time.perf_counter() - t0
            sent = [e for e in summary.events if e["camera"] == camera]
            listener.wait_for(lambda: sum(e.get("camera") == camera for e in listener.events) >= len(sent), timeout=30)
            received = [e for e in listener.events if e.get("camera") == camera]
        if daemon.outbox_depth_at_exit:
            raise SystemExit(f"{bundle.name}: {daemon.outbox_depth_at_exit} message(s) not acknowledged by {broker}")
        report["bundles"][bundle.name] = {
            "frames": summary.frames, "fps": summary.fps, "wall_s": wall,
            "events": sum(e["type"] == "start" for e in summary.events), "messages_sent": len(sent),
            "messages_received": len(received),
            "index": [s[0] for s in steps], "error": [s[1] for s in steps], "score": [s[2] for s in steps],
        }
        print(f"{bundle.name}: {summary.frames} frames at {summary.fps:.2f} fps, "
              f"{report['bundles'][bundle.name]['events']} events, {len(received)}/{len(sent)} messages received",
              flush=True)
        out.write_text(json.dumps(report))  # after every bundle: an emulated run takes hours


def compare(a_path: Path, b_path: Path) -> int:
    a, b = json.loads(a_path.read_text()), json.loads(b_path.read_text())
    if set(b["bundles"]) < set(a["bundles"]):
        print(f"not run on B: {', '.join(sorted(set(a['bundles']) - set(b['bundles'])))}")
        a["bundles"] = {k: v for k, v in a["bundles"].items() if k in b["bundles"]}
    va, vb = a["versions"], b["versions"]
    print(f"A: {a_path.name} ({', '.join(f'{k} {v}' for k, v in va.items())})")
    print(f"B: {b_path.name} ({', '.join(f'{k} {v}' for k, v in vb.items())})")
    print("| bundle | frames | max abs Δ score (σ) | max rel Δ e(t) | events A / B | messages received A / B | fps A / B |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    bad = 0
    for name in sorted(set(a["bundles"]) | set(b["bundles"])):
        ra, rb = a["bundles"].get(name), b["bundles"].get(name)
        if ra is None or rb is None or ra["index"] != rb["index"]:
            print(f"| {name} | missing or different frames on one side | | | | | |")
            bad += 1
            continue
        sa, sb = np.array(ra["score"], float), np.array(rb["score"], float)
        ea, eb = np.array(ra["error"], float), np.array(rb["error"], float)
        scored = ~np.isnan(sa)
        if not np.array_equal(scored, ~np.isnan(sb)):
            bad += 1
        ds = float(np.max(np.abs(sa[scored] - sb[scored]))) if scored.any() else float("nan")
        de = float(np.max(np.abs(ea[scored] - eb[scored])) / max(np.max(np.abs(ea[scored])), 1e-12))
        bad += ra["events"] != rb["events"] or ra["messages_received"] != ra["messages_sent"] \
            or rb["messages_received"] != rb["messages_sent"]
        print(f"| {name} | {int(scored.sum())} | {ds:.2e} | {de:.2e} | {ra['events']} / {rb['events']} | "
              f"{ra['messages_received']}/{ra['messages_sent']} / {rb['messages_received']}/{rb['messages_sent']} | "
              f"{ra['fps']:.1f} / {rb['fps']:.2f} |")
    print("same events, every message received" if not bad else f"{bad} bundle(s) differ in events or delivery")
    return 1 if bad else 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("frames").add_argument("out", type=Path)
    r = sub.add_parser("run")
    r.add_argument("frames", type=Path)
    r.add_argument("broker")
    r.add_argument("out", type=Path)
    r.add_argument("--bundles", help="only these shipped models, comma-separated (e.g. bisho,stmae)")
    c = sub.add_parser("compare")
    c.add_argument("a", type=Path)
    c.add_argument("b", type=Path)
    args = p.parse_args()
    if args.cmd == "frames":
        decode_frames(args.out)
    elif args.cmd == "run":
        run_all(args.frames, args.broker, args.out, args.bundles.split(",") if args.bundles else None)
    else:
        return compare(args.a, args.b)
    return 0


if __name__ == "__main__":
    sys.exit(main())
