"""The optional extras: which one provides a module, and the exact command that installs it.

edge-vad is installed from a clone or a wheel, not from an index, so ``pip install
'edge-vad[train]'`` would fail; the command names the extra's own requirements,
read from the project's metadata (the checkout's pyproject.toml, else the installed
distribution's), which any pip can install.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

DIST = "edge-vad"
_PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"

# Top-level module -> the extra that provides it (the smallest one, where several do).
OPTIONAL_MODULES = {
    "torch": "train", "safetensors": "train", "onnx": "train", "onnxscript": "train", "onnxslim": "train",
    "sklearn": "train",
    "openvino": "openvino", "nncf": "openvino",
    "tensorrt": "tensorrt", "cuda": "tensorrt",  # cuda-python installs the module `cuda`
    "picamera2": "picamera",
    "amqtt": "demo", "matplotlib": "demo",
}


def extra_of(module: str | None) -> str | None:
    """The extra whose absence explains a failed ``import module`` (None: not an optional module)."""
    return OPTIONAL_MODULES.get((module or "").split(".")[0])


def requirements(extra: str) -> list[str]:
    """The requirement strings of ``extra`` ([] if the metadata cannot be read)."""
    if _PYPROJECT.is_file():  # a checkout: its pyproject.toml is the truth, even with a stale editable install
        try:
            import tomllib
        except ImportError:  # Python 3.10: fall back to the installed metadata
            pass
        else:
            project = tomllib.loads(_PYPROJECT.read_text()).get("project", {})
            if project.get("name") == DIST:
                return list(project.get("optional-dependencies", {}).get(extra, []))
    import importlib.metadata as md

    try:
        declared = md.requires(DIST) or []
    except md.PackageNotFoundError:
        return []
    marker = re.compile(r"""extra\s*==\s*["']%s["']""" % re.escape(extra))
    return [req.split(";")[0].strip() for req in declared if ";" in req and marker.search(req.split(";", 1)[1])]


def install_command(extra: str) -> str:
    reqs = requirements(extra)
    if not reqs:
        return f"pip install '{DIST}[{extra}]'"
    return "pip install " + " ".join(shlex.quote(r) for r in reqs)
