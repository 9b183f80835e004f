"""Where the files that ship beside the code live: ``profiles/`` and ``firmware_configs/``.

In the repository they are top-level folders; a built wheel carries copies inside the
package (``edge_vad/assets/``, put there by ``setup.py``), because a wheel installs
packages, not a repository's layout. The same call finds them in both.
"""

from __future__ import annotations

from pathlib import Path

from edge_vad.errors import EdgeVadError

_PACKAGE = Path(__file__).resolve().parent
SHIPPED = ("profiles", "firmware_configs")  # setup.py copies exactly these into the wheel


def shipped_dir(name: str) -> Path:
    """The folder ``name`` (one of ``SHIPPED``): the installed copy, else the checkout's."""
    if name not in SHIPPED:
        raise ValueError(f"{name!r} is not shipped; shipped folders: {', '.join(SHIPPED)}")
    for candidate in (_PACKAGE / "assets" / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise EdgeVadError(f"{name}/ is missing from this installation (looked in {_PACKAGE / 'assets'} and "
                       f"{_PACKAGE.parent}); reinstall edge-vad from its wheel or a clone")
