"""STM-AE (Liu et al., ICME 2022): appearance and motion memories with adversarial frame prediction."""
