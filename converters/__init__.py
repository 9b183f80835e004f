"""PyTorch checkpoint → verified, self-describing bundle for a deployment target."""

from converters.convert import convert
from converters.targets import TARGETS, get_target

__all__ = ["convert", "TARGETS", "get_target"]
