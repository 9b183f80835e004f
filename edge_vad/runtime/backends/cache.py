"""Where compiled models are cached on this machine: one root for every backend and every command.

``--cache-dir`` where a command has one, else ``$EDGE_VAD_CACHE`` (the systemd unit sets it to its
CacheDirectory), else the service's cache where the service is installed, so that ``edge-vad build-engine``
run by hand fills the cache the service reads, else ``~/.cache/edge-vad``.
"""

from __future__ import annotations

import os
from pathlib import Path

SERVICE_CACHE = Path("/var/cache/edge-vad")


def cache_root(env=None, service: Path = SERVICE_CACHE) -> tuple[Path, str]:
    """The cache root and why it is that one."""
    env = os.environ if env is None else env
    if env.get("EDGE_VAD_CACHE"):
        return Path(env["EDGE_VAD_CACHE"]), "$EDGE_VAD_CACHE"
    if service.is_dir():
        return service, f"the service's cache ({service} exists)"
    return Path.home() / ".cache" / "edge-vad", "default (no $EDGE_VAD_CACHE)"
