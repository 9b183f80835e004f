"""Bundles: the manifest schema and loading a bundle with its checksums verified."""

from edge_vad.runtime.bundle.loader import Bundle, load_bundle, sha256_file
from edge_vad.runtime.bundle.manifest import MANIFEST, SCHEMA_VERSION, Manifest

__all__ = ["Bundle", "load_bundle", "sha256_file", "MANIFEST", "SCHEMA_VERSION", "Manifest"]
