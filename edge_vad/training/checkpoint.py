"""Checkpoint directories: ``model.safetensors`` + ``config.json`` (+ resume state).

No pickle anywhere: weights and optimiser tensors go to safetensors, everything
else to JSON, so a checkpoint from a stranger cannot run code on load.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from edge_vad.errors import EdgeVadError
from edge_vad.models import get_model

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
OPTIM = "optimizer.safetensors"
CALIBRATION = "calibration.json"


def atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def _atomic_save_tensors(tensors: dict[str, torch.Tensor], path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp))
    os.replace(tmp, path)


def _flatten_optimizer(state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    tensors, meta = {}, {"param_groups": state["param_groups"], "state": {}}
    for pid, pstate in state["state"].items():
        entry = {}
        for key, value in pstate.items():
            if torch.is_tensor(value):
                tensors[f"{pid}.{key}"] = value
                entry[key] = "tensor"
            else:
                entry[key] = value
        meta["state"][str(pid)] = entry
    return tensors, meta


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state = {}
    for pid, entry in meta["state"].items():
        state[int(pid)] = {k: tensors[f"{pid}.{k}"] if v == "tensor" else v for k, v in entry.items()}
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(out: Path, model, info: dict[str, Any], optimizers: dict | None = None) -> None:
    """Weights, then optimiser state, then config.json last: a checkpoint whose
    config.json names an epoch has everything that epoch produced."""
    out.mkdir(parents=True, exist_ok=True)
    _atomic_save_tensors(model.state_dict(), out / WEIGHTS)
    if optimizers:
        tensors, meta = {}, {}
        for name, opt in optimizers.items():
            t, m = _flatten_optimizer(opt.state_dict())
            tensors.update({f"{name}/{k}": v for k, v in t.items()})
            meta[name] = m
        _atomic_save_tensors(tensors, out / OPTIM)
        info = {**info, "optimizers": meta}
    atomic_write_text(out / CONFIG, json.dumps(info, indent=2))


def read_info(ckpt: Path) -> dict[str, Any]:
    path = Path(ckpt) / CONFIG
    if not path.exists():
        raise EdgeVadError(f"{ckpt}: not a checkpoint directory (no {CONFIG})")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise EdgeVadError(f"{path}: invalid JSON ({exc})") from exc


def load_model(ckpt: Path):
    """Build the model a checkpoint describes and load its weights (eval mode)."""
    ckpt = Path(ckpt)
    info = read_info(ckpt)
    entry = get_model(info["model"])
    model = entry.torch_side().build(info["config"])
    weights = ckpt / WEIGHTS
    if not weights.exists():
        raise EdgeVadError(f"{ckpt}: no {WEIGHTS}")
    state = {k: v.float() for k, v in load_file(str(weights)).items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise EdgeVadError(f"{weights}: weights do not fit model '{info['model']}' (missing {missing[:3]}, unexpected {unexpected[:3]})")
    model.eval()
    return model, info


def load_optimizer_state(ckpt: Path, optimizers: dict, info: dict) -> None:
    path = Path(ckpt) / OPTIM
    if not path.exists() or "optimizers" not in info:
        return
    tensors = load_file(str(path))
    for name, opt in optimizers.items():
        if name in info["optimizers"]:
            mine = {k.split("/", 1)[1]: v for k, v in tensors.items() if k.startswith(name + "/")}
            opt.load_state_dict(_unflatten_optimizer(mine, info["optimizers"][name]))


def read_calibration(ckpt: Path) -> dict | None:
    path = Path(ckpt) / CALIBRATION
    return json.loads(path.read_text()) if path.exists() else None
