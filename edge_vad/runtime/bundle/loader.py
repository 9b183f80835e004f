"""Load a converted bundle and prove it is intact before anything runs it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from edge_vad.errors import EdgeVadError
from edge_vad.runtime.bundle.manifest import MANIFEST, SCHEMA_VERSION, Manifest


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class Bundle:
    root: Path
    manifest: Manifest

    @property
    def graph_path(self) -> Path:
        return self.root / self.manifest.graph.file

    @property
    def id(self) -> str:
        return self.manifest.bundle_id


def _format_validation(path: Path, exc: ValidationError) -> str:
    lines = [f"{path}: invalid manifest"]
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        lines.append(f"  {where}: {err['msg']}")
    return "\n".join(lines)


def load_bundle(root: str | Path, verify: bool = True) -> Bundle:
    root = Path(root)
    path = root / MANIFEST
    if not path.exists():
        raise EdgeVadError(f"{root}: not a bundle (no {MANIFEST}); create one with 'edge-vad convert'")
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise EdgeVadError(f"{path}: invalid JSON ({exc})") from exc
    version = raw.get("schema_version") if isinstance(raw, dict) else None
    if version != SCHEMA_VERSION:
        raise EdgeVadError(
            f"{path}: manifest schema version {version!r}, this edge-vad reads version {SCHEMA_VERSION}; "
            "re-convert the model or upgrade edge-vad"
        )
    try:
        manifest = Manifest.model_validate(raw)
    except ValidationError as exc:
        raise EdgeVadError(_format_validation(path, exc)) from None
    if manifest.graph.file not in manifest.files:
        raise EdgeVadError(f"{path}: graph file {manifest.graph.file} has no checksum in 'files'")
    if verify:
        for rel, expected in manifest.files.items():
            f = root / rel
            if not f.exists():
                raise EdgeVadError(f"{f}: listed in the manifest but missing from the bundle")
            actual = sha256_file(f)
            if actual != expected:
                raise EdgeVadError(
                    f"{f}: checksum mismatch (manifest {expected[:12]}…, file {actual[:12]}…); "
                    "the bundle is corrupt or was modified — copy or convert it again"
                )
    return Bundle(root, manifest)
