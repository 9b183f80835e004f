"""Presets of the object-attribute detector (``objattr``).

Not one of the seed papers: an object-centric detector in the spirit of the methods that lead the
benchmarks (AI-VAD, Reiss & Hoshen; MULDE), reduced to what a camera box computes without a
detector network. Every foreground object gets attributes (``edge_vad.data.objects``: where its
feet are, its size, its speed, how long it has stayed) and is scored by its distance to the objects
of normal footage (k nearest neighbours, in fixed units per attribute). The frame's score is its
most abnormal object, so a busier scene is not a more abnormal one, and every alert names the object
and the attribute that made it abnormal. The density is fitted, not trained: no gradients, seconds
on a CPU; the deployed graph is the neighbour search (ONNX, any target), the attributes are computed
torch-free on the device.

``edge``: 16 object slots, a bank of at most 4000 normal objects, k = 5. ``paper``: there is no
paper for it; the preset of the same name exists for the registry's sake and is the same model with
a larger bank.
"""

from __future__ import annotations

from edge_vad.models.registry import ModelEntry, register_model

_COMMON = {
    "color": "gray",
    "slots": 16,
    "k": 5,
    # One unit of each attribute (x, y, log height, log width, speed px/frame, stillness share of 3 s):
    # the differences a person would call noticeable. Fixed, not fitted: most attributes barely vary
    # on normal footage (stillness is nearly always 0), and their spread would make any change huge.
    "units": [0.04, 0.04, 0.3, 0.3, 0.6, 0.1],
    "epochs": 0,  # fitted on the training frames after the (empty) training loop
    "batch_size": 1,
    "lr": 0.0,
    "score_grid": 1,
    "score_topk": 1,
    "score_ema": 0.5,
    "score_agg": "max",
}

PRESETS = {
    "edge": {**_COMMON, "bank": 4000},
    "paper": {**_COMMON, "bank": 16000},
}

ENTRY = register_model(
    ModelEntry(
        name="objattr",
        summary="Object attributes (position, size, speed, stillness) scored by k-NN density; names the object",
        paper="(none: object-centric attributes as in AI-VAD, Reiss & Hoshen 2023, without a detector network)",
        presets=PRESETS,
        torch_module="edge_vad.models.objattr.model",
        tags=("objects", "density", "explainable"),
        test_overrides={"bank": 300},
        precisions=("fp32", "fp16", "bf16"),
    )
)
