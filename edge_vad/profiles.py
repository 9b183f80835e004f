"""Device profiles: one YAML per device says how a bundle runs there.

Validated strictly (unknown keys rejected, errors name the file and the field)
so a typo in a profile fails at `convert`/`package` time, not on the device.
Built-in profiles live in the repository's ``profiles/`` folder (a wheel carries a
copy: ``edge_vad.shipped``); a user can pass the path of their own YAML anywhere a
profile name is accepted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from edge_vad.errors import EdgeVadError
from edge_vad.shipped import shipped_dir

PROFILES_DIR = shipped_dir("profiles")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CameraDefaults(_Strict):
    source: str = "/dev/video0"  # device, file or rtsp:// URL
    width: int = Field(640, gt=0)
    height: int = Field(480, gt=0)
    fps: float = Field(15.0, gt=0)


class Profile(_Strict):
    name: str
    description: str
    target: str  # an edge_vad/targets.py target
    backend: Literal["onnxruntime", "openvino", "tensorrt"]
    device: str  # CPU / GPU / NPU (OpenVINO), cuda:0 (NVIDIA), cpu
    precision: Literal["fp32", "fp16", "int8"]
    preset: Literal["edge", "paper"] = "edge"  # model preset, i.e. input size, this device keeps up with
    input_size: int = Field(gt=0)  # square input the preset uses, for sizing memory and latency
    max_cameras: int = Field(1, ge=1)  # batch of the engine / cameras sharing one call
    threads: int | None = Field(None, ge=1)
    latency_budget_ms: float = Field(gt=0)  # per frame, per camera
    workspace_mb: int | None = Field(None, gt=0)  # TensorRT builder workspace
    dla_core: int | None = Field(None, ge=0)  # Jetson DLA core to build on, None = GPU
    power_mode: str | None = None  # nvpmodel mode name/id on Jetson, governor elsewhere
    camera: CameraDefaults = CameraDefaults()
    firmware: list[str] = []  # firmware_configs/ subfolders that go with this device

    @model_validator(mode="after")
    def _consistent(self):
        from edge_vad.targets import TARGETS

        if self.target not in TARGETS:
            raise ValueError(f"target '{self.target}' unknown; targets: {', '.join(sorted(TARGETS))}")
        t = TARGETS[self.target]
        if t.backend != self.backend:
            raise ValueError(f"target '{self.target}' runs on backend '{t.backend}', not '{self.backend}'")
        if self.precision not in t.precisions:
            raise ValueError(f"target '{self.target}' has no precision '{self.precision}' ({', '.join(t.precisions)})")
        if self.dla_core is not None and self.backend != "tensorrt":
            raise ValueError("dla_core applies to TensorRT (Jetson) profiles only")
        return self


def list_profiles() -> list[str]:
    return sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))


def _path(name_or_path: str | Path) -> Path:
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        if not p.exists():
            raise EdgeVadError(f"{p}: no such profile file")
        return p
    path = PROFILES_DIR / f"{name_or_path}.yaml"
    if not path.exists():
        raise EdgeVadError(f"unknown profile '{name_or_path}'; profiles: {', '.join(list_profiles())} (or a path to a YAML)")
    return path


def load_profile(name_or_path: str | Path) -> Profile:
    path = _path(name_or_path)
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise EdgeVadError(f"{path}: invalid YAML ({exc})") from exc
    if not isinstance(raw, dict):
        raise EdgeVadError(f"{path}: a profile is a mapping of fields, got {type(raw).__name__}")
    raw.setdefault("name", path.stem)
    try:
        return Profile.model_validate(raw)
    except ValidationError as exc:
        lines = [f"{path}: invalid profile"]
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "(profile)"
            lines.append(f"  {where}: {err['msg']}")
        raise EdgeVadError("\n".join(lines)) from None


def profile_path(name_or_path: str | Path) -> Path:
    return _path(name_or_path)
