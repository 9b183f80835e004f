"""Training glue (needs the ``train`` extra); models themselves live in ``edge_vad.models``."""
