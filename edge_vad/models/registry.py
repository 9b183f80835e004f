"""The model registry: every model of edge-vad is found here by name.

Entries are plain data and import no torch, so the CLI can list models and the
runtime can describe bundles on a device without the training extra. The torch
side is loaded only when a model is built.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
from dataclasses import dataclass, field
from typing import Any, Callable

from edge_vad.errors import EdgeVadError


@dataclass(frozen=True)
class ModelEntry:
    name: str
    summary: str
    paper: str
    presets: dict[str, dict[str, Any]]
    # "module:attr" of the torch side; resolved lazily so listing models needs no torch.
    torch_module: str
    default_preset: str = "edge"
    tags: tuple[str, ...] = field(default_factory=tuple)
    # Overrides that make a tiny variant for the test suite (seconds to train on a CPU).
    test_overrides: dict[str, Any] = field(default_factory=dict)
    # Precisions its graph makes sense in; None: every target's. (A neighbour search has no convolutions
    # to run in INT8, and its distances would lose their meaning in it.)
    precisions: tuple[str, ...] | None = None

    def supports(self, precision: str) -> bool:
        return self.precisions is None or precision in self.precisions

    def preset(self, name: str) -> dict[str, Any]:
        if name not in self.presets:
            raise EdgeVadError(
                f"model '{self.name}' has no preset '{name}'; presets: {', '.join(sorted(self.presets))}"
            )
        return dict(self.presets[name])

    def torch_side(self):
        """The module implementing ``build(config)``, ``train_step`` etc. (needs the train extra)."""
        from edge_vad.errors import require

        require("torch", "train", f"Building the '{self.name}' model")
        return importlib.import_module(self.torch_module)


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(entry: ModelEntry) -> ModelEntry:
    if entry.name in _REGISTRY:
        raise ValueError(f"model '{entry.name}' is registered twice")
    _REGISTRY[entry.name] = entry
    return entry


def _load_builtin() -> None:
    """Import every ``edge_vad/models/<name>/config.py``; importing one registers its model.

    Discovery instead of a list means a new model folder is all it takes to add a model.
    The config modules are torch-free, so this is cheap and safe on a device.
    """
    import pkgutil

    import edge_vad.models as pkg

    for info in pkgutil.iter_modules(pkg.__path__):
        if info.ispkg and importlib.util.find_spec(f"{pkg.__name__}.{info.name}.config") is not None:
            importlib.import_module(f"{pkg.__name__}.{info.name}.config")


def list_models() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


def get_model(name: str) -> ModelEntry:
    _load_builtin()
    if name in _REGISTRY:
        return _REGISTRY[name]
    close = difflib.get_close_matches(name, _REGISTRY, n=3)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise EdgeVadError(f"unknown model '{name}'.{hint} Available: {', '.join(sorted(_REGISTRY))}")


def entries() -> list[ModelEntry]:
    _load_builtin()
    return [_REGISTRY[n] for n in sorted(_REGISTRY)]


Builder = Callable[[dict[str, Any]], Any]
