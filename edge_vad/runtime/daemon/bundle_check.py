"""Prove a bundle can score before any camera depends on it.

Checksums say the files are the ones the converter wrote; they do not say the
manifest's state tensors fit the graph. A bundle whose manifest was edited (or
mixed with another model's graph) fails on every frame, so the daemon and
``config validate`` check it once, up front, and say so in one line.
"""

from __future__ import annotations

import numpy as np

from edge_vad.runtime.bundle.manifest import Manifest
from edge_vad.runtime.daemon.exit_codes import BundleInvalid

#: backends whose session is cheap to create anywhere; a TensorRT engine is built on the device itself
PROBE_BACKENDS = ("onnxruntime", "openvino")


def state_mismatch(manifest: Manifest) -> str | None:
    """The manifest's state tensors against the graph inputs and outputs it lists itself."""
    inputs = {t.name: t for t in manifest.graph.inputs}
    outputs = {t.name: t for t in manifest.graph.outputs}
    for s in manifest.state:
        for name, table, side in ((s.input, inputs, "input"), (s.output, outputs, "output")):
            spec = table.get(name)
            if spec is None:
                return f"state tensor {name!r} is not a graph {side}"
            fixed = spec.shape[1:]
            if len(fixed) != len(s.shape) or any(isinstance(d, int) and d != e for d, e in zip(fixed, s.shape)):
                return f"state tensor {name!r} has shape {s.shape} in the manifest, the graph {side} {spec.shape[1:]}"
    return None


def probe(stream) -> None:
    """Score blank frames on ``stream`` from zero state until the first score (the warm-up frames
    skip the error outputs), then forget them; BundleInvalid if that fails."""
    m = stream.bundle.manifest
    why = state_mismatch(m)
    if why is None:
        blank = np.zeros((m.input.height, m.input.width, 3), np.uint8)
        gate, stream.gate = stream.gate, None  # the motion gate would answer still frames itself
        try:
            for _ in range(m.warmup_frames + 1):
                stream.step(blank)
        except Exception as exc:  # noqa: BLE001 - whatever the engine raises, the bundle is unusable
            why = f"the model step fails on a blank frame ({_first_line(exc)})"
        finally:
            stream.gate = gate
            stream.reset()
    if why:
        raise BundleInvalid(f"bundle {stream.bundle.root} cannot score frames: {why}; convert the model "
                            "again (edge-vad convert) or restore the bundle's original manifest.json")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]
