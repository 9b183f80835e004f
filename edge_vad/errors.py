"""User-facing errors.

Anything a user can cause (a wrong path, a bad field, a missing extra) raises an
``EdgeVadError``; the CLI prints its message and exits with status 2 instead of
showing a traceback.
"""

from __future__ import annotations


class EdgeVadError(Exception):
    """A mistake the user can fix; the message says what and where."""


class MissingDependency(EdgeVadError):
    """An optional extra is not installed; the message carries the install command."""

    def __init__(self, package: str, extra: str, purpose: str):
        from edge_vad.extras import install_command

        self.package = package
        self.extra = extra
        # One line: it is what a user on a device copies into their shell.
        super().__init__(f"{purpose} needs {package}, which is not installed (the '{extra}' extra): "
                         f"{install_command(extra)}")


def require(module: str, extra: str, purpose: str, package: str | None = None):
    """Import an optional module or raise MissingDependency naming the extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - exercised where the extra is absent
        raise MissingDependency(package or module, extra, purpose) from exc
