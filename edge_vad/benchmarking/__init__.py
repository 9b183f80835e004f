"""Benchmarks: ``edge-vad bench`` (accuracy and speed per target), FLOP counts, engine operator profiles.

Measuring code, kept apart from converting code (``converters``) and from the runtime.
"""
