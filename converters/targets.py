"""The deployment targets, for the converters: the table itself is ``edge_vad.targets`` (the runtime checks
device profiles against it, without torch, which importing this package needs)."""

from edge_vad.targets import INT8_WEIGHTS, PRECISIONS, TARGETS, Target, get_target

__all__ = ["INT8_WEIGHTS", "PRECISIONS", "TARGETS", "Target", "get_target"]
