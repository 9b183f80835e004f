"""HF2-VAD (Liu et al. 2021): flow reconstruction by ML-MemAE-SC guiding a CVAE frame predictor."""
