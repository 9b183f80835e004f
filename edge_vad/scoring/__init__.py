"""Scores from model errors (numpy only: shared by evaluation and the runtime)."""
