"""Presets of the prototype-guided memory two-branch AE (Lai, Han, Wang 2021).

``paper`` is the published setting: 256×256 RGB in [−1, 1], t = 4 stacked
input frames, MNAD's U-Net encoder (64/128/256/512, query 32×32×512), N = 100
memory items, future-frame decoder with skips and RGB-difference decoder
without, λ_pred = 1, λ_diff = 0.1, λ_dis = 1, γ = 0.6, Adam 2e-4, batch 4.

``edge`` keeps the topology, N, t, the losses and the score and scales the
image to 96×96 and every width by ¼ (query 12×12×128): about 1/114 of the
compute, so a camera runs in real time on two CPU cores, the weights fit in a
few MB and training fits inside 25 min on one core (12 epochs).
"""

from __future__ import annotations

from edge_vad.models.registry import ModelEntry, register_model
from edge_vad.scoring.streaming import SCORE_DEFAULTS

_COMMON = {
    "color": "rgb",
    "t": 4,
    "memory_items": 100,
    # Eq. 12 summed over each item's nearest queries ("nearest") or, as printed, all ("all"); see memory.py.
    "update_scope": "nearest",
    "lambda_pred": 1.0,
    "lambda_diff": 0.1,
    "lambda_dis": 1.0,
    "gamma": 0.6,
    "lr": 2e-4,
    "batch_size": 4,
    "strides": [1],
    **SCORE_DEFAULTS,
    # Sum of positive cell z-scores (intensity × extent) instead of the top-2 mean:
    # on validation footage (never the test set) it ranked injected anomalies better
    # (see README).
    "score_agg": "sumpos",
}

PRESETS = {
    "paper": {**_COMMON, "size": 256, "channels": [64, 128, 256, 512], "epochs": 60},
    "edge": {**_COMMON, "size": 96, "channels": [16, 32, 64, 128], "epochs": 12},
}

ENTRY = register_model(
    ModelEntry(
        name="protomem",
        summary="Prototype-guided memory two-branch AE: future frame + RGB difference (Lai et al. 2021)",
        paper="papers/prototype_memory_two_branch.txt",
        presets=PRESETS,
        torch_module="edge_vad.models.protomem.model",
        tags=("memory", "prediction"),
        # Batch 16: the tiny net is bound by per-op overhead, so fewer, larger steps are faster.
        test_overrides={"size": 32, "channels": [4, 8, 8, 16], "memory_items": 10, "batch_size": 16},
    )
)
