"""Models: a registry of plain-data entries; torch code lives beside each entry."""

from edge_vad.models.registry import ModelEntry, entries, get_model, list_models, register_model

__all__ = ["ModelEntry", "entries", "get_model", "list_models", "register_model"]
