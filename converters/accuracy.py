"""The accuracy gate: a converted model must still detect what the PyTorch model detects.

Two measurements, both on real frames: parity (converted vs PyTorch, step by
step, on normal footage; see parity.py) and, when labelled validation footage
is given, the frame-level AUC of both.  A conversion whose AUC drops by more
than the tolerance fails with the numbers unless the user accepts the drop.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edge_vad.data.frames import read_frames, video_info
from edge_vad.data.labels import load_labels
from edge_vad.errors import EdgeVadError
from edge_vad.evaluation.evaluate import evaluate
from edge_vad.evaluation.scorers import Scores, score_checkpoint
from edge_vad.runtime.bundle.loader import Bundle
from edge_vad.runtime.stream import CameraStream

DEFAULT_AUC_TOLERANCE = 0.01
PROTOCOLS = ("auc_stream", "auc_offline")
_TORCH_CACHE: dict[tuple[str, str], dict] = {}


@dataclass
class AucReport:
    video: str
    frames: int
    pytorch: dict  # protocol -> AUC
    converted: dict
    drop: dict  # protocol -> pytorch − converted (positive = worse)
    tolerance: float
    passed: bool
    accepted_by_user: bool = False

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        verdict = "PASS" if self.passed else ("ACCEPTED (over tolerance)" if self.accepted_by_user else "FAIL")
        parts = [f"{p.removeprefix('auc_')} {self.pytorch[p]:.4f} → {self.converted[p]:.4f} (Δ {-self.drop[p]:+.4f})"
                 for p in PROTOCOLS]
        return f"AUC {verdict} on {self.video} ({self.frames} frames), tolerance {self.tolerance}: " + "; ".join(parts)


def stream_scores(bundle: Bundle, backend, video: Path) -> Scores:
    """Per-frame scores of the converted model through the runtime's own CameraStream."""
    # The graph against PyTorch on the same raw frames: conditioning would be a difference of its own.
    stream = CameraStream(bundle, backend=backend, conditioning=False)
    errors, scores = [], []
    for f in read_frames(video):
        r = stream.step(f)
        errors.append(r.error)
        scores.append(r.score)
    return Scores(bundle.id, np.array(errors), np.array(scores), stream.threshold, stream.warmup)


def pytorch_auc(ckpt: Path, video: Path, labels: np.ndarray) -> dict:
    key = (str(Path(ckpt).resolve()), str(Path(video).resolve()))
    if key not in _TORCH_CACHE:  # bench converts one checkpoint to many targets
        _TORCH_CACHE[key] = evaluate(score_checkpoint(Path(ckpt), Path(video)), labels)
    return _TORCH_CACHE[key]


def read_val_labels(video: Path, labels: Path) -> np.ndarray:
    return load_labels(labels, video_info(video).frames)


def auc_gate(ckpt: Path, bundle: Bundle, backend, video: Path, labels: Path,
             tolerance: float = DEFAULT_AUC_TOLERANCE, accept_drop: bool = False) -> AucReport:
    y = read_val_labels(video, labels)
    if y.min() == y.max():
        raise EdgeVadError(f"{labels}: labels hold one class only; AUC needs normal and anomalous frames")
    ref = pytorch_auc(ckpt, video, y)
    conv = evaluate(stream_scores(bundle, backend, video), y)
    drop = {p: float(ref[p] - conv[p]) for p in PROTOCOLS}
    passed = all(d <= tolerance for d in drop.values())
    return AucReport(str(video), int(conv["frames"]), {p: float(ref[p]) for p in PROTOCOLS},
                     {p: float(conv[p]) for p in PROTOCOLS}, drop, tolerance, passed,
                     accepted_by_user=(not passed and accept_drop))
