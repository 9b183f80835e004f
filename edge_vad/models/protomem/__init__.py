"""Prototype-guided memory, two-branch auto-encoder (Lai, Han, Wang 2021)."""
