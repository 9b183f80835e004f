"""How ``edge-vad run`` ends, for scripts and service managers: one code per outcome.

1 stays Python's own (a crash, a bug); 2 is every user mistake the CLI reports
(``EdgeVadError``: a bad flag, config, path or missing extra).
"""

from __future__ import annotations

from edge_vad.errors import EdgeVadError

OK = 0
USAGE = 2  # a mistake in the command line, the config or a path: the message says which
UNDELIVERED = 3  # the run ended with messages the broker did not acknowledge; they are kept in the state dir
SOURCE_UNUSABLE = 4  # a file source could not be opened or gave no usable frame
BUNDLE_INVALID = 5  # the bundle cannot score frames (its state tensors or graph do not fit)

HELP = (
    "Exit status: 0 every message acknowledged; "
    f"{USAGE} a mistake in the flags, config or paths; "
    f"{UNDELIVERED} messages not acknowledged by the broker (kept in the state dir, sent on the next start); "
    f"{SOURCE_UNUSABLE} a source could not be opened or gave no usable frame; "
    f"{BUNDLE_INVALID} the bundle cannot score frames."
)


class BundleInvalid(EdgeVadError):
    """The bundle loads but cannot score a frame."""

    exit_code = BUNDLE_INVALID
