"""The JPEG an operator sees: the peak frame with the model's error heatmap on top.

The event id travels inside the JPEG as a comment (COM segment): MQTT 3.1.1 has
no message properties, and a retained image whose event is unknown is useless
to a consumer that saves snapshots next to events.
"""

from __future__ import annotations

import struct

import cv2
import numpy as np

_COMMENT_PREFIX = b"edge-vad event "


def overlay(frame_bgr: np.ndarray, error_map: np.ndarray | None, alpha: float = 0.45) -> np.ndarray:
    if error_map is None:
        return frame_bgr
    h, w = frame_bgr.shape[:2]
    m = np.asarray(error_map, np.float32)
    lo, hi = float(m.min()), float(np.percentile(m, 99.5))
    m = np.clip((m - lo) / (hi - lo + 1e-12), 0, 1)
    big = cv2.resize(m, (w, h), interpolation=cv2.INTER_LINEAR)
    heat = cv2.applyColorMap((big * 255).astype(np.uint8), cv2.COLORMAP_JET)
    # Blend only where the error is noticeable, so the scene stays readable.
    # blendLinear does the per-pixel weighting in one C++ pass: in numpy float32
    # the overlay cost more than a model step, and it runs on the scoring thread.
    weight = alpha * big
    return cv2.blendLinear(np.ascontiguousarray(frame_bgr), heat, 1.0 - weight, weight)


def encode(frame_bgr: np.ndarray, error_map: np.ndarray | None, event_id: str, quality: int = 85) -> bytes:
    ok, buf = cv2.imencode(".jpg", overlay(frame_bgr, error_map), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    data = buf.tobytes()
    comment = _COMMENT_PREFIX + event_id.encode("ascii", "replace")
    # SOI, then our COM segment, then the rest of the encoder's stream.
    return data[:2] + b"\xff\xfe" + struct.pack(">H", len(comment) + 2) + comment + data[2:]


def event_id_of(jpeg: bytes) -> str | None:
    """The event id stored by :func:`encode`, or None."""
    if jpeg[:4] != b"\xff\xd8\xff\xfe" or len(jpeg) < 6:
        return None
    (length,) = struct.unpack(">H", jpeg[4:6])
    comment = jpeg[6:4 + length]
    if not comment.startswith(_COMMENT_PREFIX):
        return None
    return comment[len(_COMMENT_PREFIX):].decode("ascii", "replace")
