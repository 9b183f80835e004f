"""Spatial higher-order ConvLSTM (Shen, Ouyang, Sanchez 2022).

A decoder ConvLSTM whose gates and candidate cell also see H^e_t, the hidden
state of the encoder ConvLSTM of the same size at the *same* timestep, next to
its own input X̃^d_t and its own previous hidden state H^d_{t-1}:

    g = W_x ⊗ X̃^d_t + W_e ⊗ H^e_t + W_h ⊗ H^d_{t-1} + b     (for i, f, o and C̄)

The paper's equations did not survive in our copy of the text; this is the
reading of "the SHO-ConvLSTM considers both the temporal dynamics H^d_{t-1}
and the spatial dynamics H^e_t" that adds exactly one term per gate.
It is a ConvLSTM whose input is [X̃^d_t, H^e_t], so it reuses the peephole
cell (peepholes as in Shi et al.'s ConvLSTM, which the paper builds on).
"""

from __future__ import annotations

import torch

from edge_vad.models.layers.convlstm import PeepholeConvLSTMCell


class SHOConvLSTMCell(PeepholeConvLSTMCell):
    def __init__(self, in_channels: int, spatial_channels: int, hidden: int, size: tuple[int, int], kernel: int = 5):
        super().__init__(in_channels + spatial_channels, hidden, size, kernel)
        self.spatial_channels = spatial_channels

    def forward(self, x: torch.Tensor, h_enc: torch.Tensor, h: torch.Tensor, c: torch.Tensor):  # type: ignore[override]
        return super().forward(torch.cat([x, h_enc], dim=1), h, c)
