"""What a model's graph takes as ``frame``: the input spec, and the names of its motion channels.

Pure description (no OpenCV): the manifest, the models and the preprocessors all read it, and
it depends on none of them. Motion names (``InputSpec.motion``):

* ``flow``: appearance + optical flow (previous → current frame), 2 channels.
* ``objects:K``: appearance + flow + K box masks of the current frame's foreground objects.
* ``attributes:K``: no image at all: a K×F table of the current frame's objects and their
  attributes (``edge_vad.data.objects``), the input of a density over objects.

Their implementations are in ``edge_vad.data.motion`` and ``edge_vad.data.objects``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

from edge_vad.errors import EdgeVadError

#: motion kinds and whether they take a ``:K`` argument
MOTION_KINDS = {"flow": False, "objects": True, "attributes": True}


def parse_motion(name: str) -> tuple[str, int]:
    """``"objects:8"`` → ("objects", 8); ``"flow"`` → ("flow", 0)."""
    kind, _, arg = name.partition(":")
    if kind not in MOTION_KINDS:
        raise EdgeVadError(f"input motion {name!r}: unknown preprocessing; known: {', '.join(sorted(MOTION_KINDS))}")
    if MOTION_KINDS[kind]:
        if not arg.isdigit() or int(arg) < 1:
            raise EdgeVadError(f"input motion {name!r}: expected '{kind}:K' with K ≥ 1 object slots")
        return kind, int(arg)
    if arg:
        raise EdgeVadError(f"input motion {name!r}: '{kind}' takes no argument")
    return kind, 0


def extra_channels(name: str) -> int:
    kind, k = parse_motion(name)
    if kind == "attributes":
        return 0  # a table, not image channels (InputSpec.table)
    return 2 if kind == "flow" else 2 + k


@dataclass(frozen=True)
class InputSpec:
    color: Literal["gray", "rgb"]
    height: int
    width: int
    low: float = 0.0
    high: float = 1.0
    # Frame rate the model was trained at; None means "whatever the source gives".
    fps: float | None = None
    # Motion channels appended to the frame (see the module docstring), e.g. "flow"; None for none.
    motion: str | None = None

    @property
    def appearance_channels(self) -> int:
        return 1 if self.color == "gray" else 3

    @property
    def channels(self) -> int:
        return self.appearance_channels + (extra_channels(self.motion) if self.motion else 0)

    @property
    def table(self) -> tuple[int, int] | None:
        """(rows, columns) when the model takes a table of objects instead of an image (``attributes:K``)."""
        if not self.motion or parse_motion(self.motion)[0] != "attributes":
            return None
        from edge_vad.data.objects import COLUMNS

        return parse_motion(self.motion)[1], len(COLUMNS)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "InputSpec":
        return cls(**d)


def window_channels(spec: InputSpec) -> list[int]:
    """Channels per frame that a model's state may carry for each past frame: the whole frame,
    or, for ``objects:K``, its appearance and flow alone (box masks serve the current frame only).
    Each is a prefix of the frame's channels."""
    kind, _ = parse_motion(spec.motion)
    whole = spec.channels
    return [whole] if kind == "flow" else [whole, whole - extra_channels(spec.motion) + 2]
