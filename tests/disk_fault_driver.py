"""Runs one daemon whose state dir is a small tmpfs that fills up mid-run.

Started by tests/test_outbox_faults.py inside ``unshare -r -m`` (a private mount namespace), after the
tmpfs is mounted on the state dir: the disk fault is real, and nothing of it is seen outside. The fault
starts and ends at fixed frames of an in-process source, so the timing does not depend on the machine.

    python disk_fault_driver.py SPEC.json      (SPEC: state_dir, host, port, bundle, clip, out)
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge_vad.runtime.daemon.config import parse_config  # noqa: E402
from edge_vad.runtime.daemon.scheduler import Daemon  # noqa: E402

FAULT_AT, HEAL_AT = 12, 75


class FaultySource:
    """Frames from a clip; at FAULT_AT the state disk breaks, at HEAL_AT it is repaired."""

    def __init__(self, frames, fault, heal, watch):
        self.frames, self.fault, self.heal, self.watch = frames, fault, heal, watch
        self.fps = 10.0
        self.i = 0

    def read(self):
        if self.i >= len(self.frames):
            return False, None
        if self.i == FAULT_AT:
            self.fault()
        if self.i == HEAL_AT - 1:
            self.watch()  # the stats while the fault lasts (the scheduler is well past FAULT_AT by now)
        if self.i == HEAL_AT:
            self.heal()
        frame = self.frames[self.i]
        self.i += 1
        return True, frame

    def release(self):
        pass


def main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    state = Path(spec["state_dir"])
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cap = cv2.VideoCapture(spec["clip"])
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    frames += frames[:30]  # a quiet tail after the clip's anomaly: its event ends while the disk is broken
    filler = state / "filler"

    def fault():
        with open(filler, "wb") as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
            except OSError:
                pass

    def heal():
        filler.unlink()
        Path(spec["out"]).with_name("healed").touch()  # the test brings the broker back now

    during = {}
    text = json.dumps({"device_id": "box1", "prefix": "t",
                       "broker": {"host": spec["host"], "port": spec["port"], "reconnect_min_s": 1,
                                  "reconnect_max_s": 1},
                       "state": {"dir": str(state), "snapshot_interval_s": 0.2},
                       "outputs": {"stats_interval_s": 0.2},
                       "cameras": [{"name": "cam", "source": "in-process", "bundle": spec["bundle"]}]})
    daemon = Daemon(parse_config(text, Path(spec["out"]).with_name("device.yaml")),
                    sources={"cam": FaultySource(frames, fault, heal, lambda: during.update(daemon.stats()))})
    daemon.outbox.retry_s = 0.2
    summary = daemon.run(install_signals=False, drain_timeout=60)["cam"]
    code, lines = daemon.outcome()
    Path(spec["out"]).write_text(json.dumps({
        "frames": summary.frames, "total": len(frames), "produced": [m["msg_id"] for m in daemon.produced],
        "during": during, "after": daemon.stats(), "code": code, "lines": lines,
        "depth_at_exit": daemon.outbox_depth_at_exit}))


if __name__ == "__main__":
    main(sys.argv[1])
