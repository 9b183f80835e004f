"""Shen, Ouyang, Sanchez (ICASSP 2022): bi-directional ConvLSTM-AE with SHO-ConvLSTM and attention."""
