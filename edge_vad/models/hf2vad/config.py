"""Presets of HF2-VAD (Liu et al., ICCV 2021), on foreground-object cubes.

``paper``: ML-MemAE-SC with features_root 32 and three memories of 2000 slots
(λ_shrink 0.0005, entropy weight 0.0002), CVAE with nf 64→128, two residual
blocks per stage, RGB cubes 32×32 over t = 4 previous frames, score weights
w_r = 1.0 / w_p = 0.1 (Ped2 config), Adam 1e-4 (fine-tune 8e-5).

``edge``: the same architecture, gray, features_root 8, 48 memory slots (the
paper's 2000 × 28 672-d slots alone are 229 MB; here 48 × 7 168-d, 1.4 MB fp32),
CVAE nf 16→32 with one residual block per stage, at most 10 objects per frame,
cubes cropped from a 120×160 frame. Fits a 4 GB Jetson with room to spare and
runs in real time on two CPU cores (features_root 16 measured 3.8× slower).
"""

from __future__ import annotations

from edge_vad.models.registry import ModelEntry, register_model
from edge_vad.scoring.streaming import SCORE_DEFAULTS

_COMMON = {
    "cube": 32,  # STC side, as published
    "past": 4,  # t previous frames
    "shrink_thres": None,  # None: 1 / memory slots (the paper's 0.0005 for 2000)
    "entropy_weight": 0.0002,
    "lambda_kl": 1.0,
    "lambda_frame": 1.0,
    "lambda_grad": 1.0,
    "lambda_recon": 1.0,  # fine-tune stage
    "w_flow": 1.0,  # score weights w_r, w_p
    "w_frame": 0.1,
    "dropout": 0.1,
    "lr": 1e-4,
    "lr_finetune": 8e-5,
    # Fractions of the epochs for stage 1 (ML-MemAE-SC), 2 (CVAE, MemAE frozen); the rest fine-tunes.
    "stages": [0.4, 0.4],
    "strides": [1],
    # Streaming score (see edge_vad.scoring.streaming): grid over the painted object map.
    **SCORE_DEFAULTS,
}

PRESETS = {
    "paper": {**_COMMON, "color": "rgb", "height": 240, "width": 320, "max_objects": 16,
              "features_root": 32, "mem_slots": 2000, "nf_start": 64, "nf_max": 128, "n_rnb": 2,
              "batch_size": 16, "epochs": 80},
    "edge": {**_COMMON, "color": "gray", "height": 120, "width": 160, "max_objects": 10,
             "features_root": 8, "mem_slots": 48, "nf_start": 16, "nf_max": 32, "n_rnb": 1,
             "batch_size": 4, "epochs": 16},
}

ENTRY = register_model(
    ModelEntry(
        name="hf2vad",
        summary="ML-MemAE-SC flow reconstruction guiding a CVAE frame predictor on object cubes (Liu et al. 2021)",
        paper="papers/hf2vad.txt",
        presets=PRESETS,
        torch_module="edge_vad.models.hf2vad.model",
        tags=("memory", "prediction", "objects", "optical-flow"),
        test_overrides={"features_root": 8, "mem_slots": 16, "nf_start": 8, "nf_max": 8, "max_objects": 4, "cube": 16,
                        "height": 60, "width": 80},
    )
)
