"""Per-camera model state on disk, so a restart neither forgets the scene nor
re-warms into a burst of false alarms.

One ``.npz`` per camera, written to a temporary file, fsynced and renamed over
the old one: a crash mid-write leaves the previous snapshot intact. A snapshot
is used only for the same camera (name and source) and the same bundle, and
only while it is recent enough to still describe the scene.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import numpy as np

log = logging.getLogger("edge_vad.state")


def atomic_write(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write ``data`` to ``path`` so that a crash leaves the old or the new file, never half of one.

    The file is created with ``mode`` whatever the umask (state holds alert payloads and model
    state: the service user only, unless the caller allows its group to read).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)  # an old temp file keeps its mode through O_CREAT
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk must not also fill up with half-written temp files
        raise
    try:  # the rename itself must reach the disk too
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


class StateStore:
    def __init__(self, directory: Path, max_age_s: float = 3600.0):
        self.dir = Path(directory)
        self.max_age_s = max_age_s

    def path(self, camera: str) -> Path:
        return self.dir / f"state-{camera}.npz"

    def save(self, camera: str, source: str, bundle_id: str, snapshot: dict, position: dict | None = None) -> None:
        """``position``: where in its source the camera was (``frame``, and the frame pacer's lead
        ``pacer_s``), so a recording resumes there instead of from its first frame."""
        import io

        header = {"camera": camera, "source": str(source), "bundle_id": bundle_id, "saved_at": time.time(),
                  "index": snapshot["index"], "ema": snapshot.get("ema"), "position": position}
        buf = io.BytesIO()
        arrays = {f"state/{k}": v for k, v in snapshot["state"].items()}
        np.savez(buf, header=np.frombuffer(json.dumps(header).encode(), dtype=np.uint8), **arrays)
        atomic_write(self.path(camera), buf.getvalue())

    def load(self, camera: str, source: str, bundle_id: str) -> dict | None:
        path = self.path(camera)
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                header = json.loads(bytes(z["header"]).decode())
                state = {k.split("/", 1)[1]: z[k] for k in z.files if k.startswith("state/")}
        except (OSError, ValueError, KeyError) as exc:
            log.warning("camera %s: ignoring unreadable state snapshot %s (%s)", camera, path, exc)
            return None
        why = None
        if header.get("bundle_id") != bundle_id:
            why = f"it was made by bundle {header.get('bundle_id')}, this camera runs {bundle_id}"
        elif header.get("camera") != camera or header.get("source") != str(source):
            why = "it belongs to another camera or source"
        elif time.time() - header.get("saved_at", 0) > self.max_age_s:
            why = f"it is {time.time() - header['saved_at']:.0f} s old (max_age_s {self.max_age_s:g})"
        if why:
            log.info("camera %s: not restoring the state snapshot: %s", camera, why)
            return None
        return {"state": state, "index": header["index"], "ema": header.get("ema"), "saved_at": header["saved_at"],
                "position": header.get("position")}
