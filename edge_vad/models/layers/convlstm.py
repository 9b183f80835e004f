"""Peephole ConvLSTM cell as in Tran & Hogg's Caffe layer (caffe_convLSTM_WTA).

Gates i, f, o, g from 3×3 convolutions of the input and the hidden state, plus
peepholes on c_{t-1} for i, f and o. A peephole is one H×W weight map per gate
shared over channels (Caffe ``Scale`` with axis 3, num_axes 2), so the cell is
tied to one spatial size.
"""

from __future__ import annotations

import torch
from torch import nn


class PeepholeConvLSTMCell(nn.Module):
    def __init__(self, in_channels: int, hidden: int, size: tuple[int, int], kernel: int = 3):
        super().__init__()
        self.hidden = hidden
        self.in_channels = in_channels
        # One convolution over [x, h] equals W_x*x + W_h*h; a single kernel is
        # faster on every backend than two convolutions and an add.
        self.gates = nn.Conv2d(in_channels + hidden, 4 * hidden, kernel, padding=kernel // 2)
        self.peephole = nn.Parameter(torch.zeros(3, 1, *size))
        with torch.no_grad():
            # Forget-gate bias 1 keeps early gradients flowing through c (Jozefowicz et al.).
            self.gates.bias.zero_()
            self.gates.bias[hidden : 2 * hidden].fill_(1.0)

    def forward(self, x: torch.Tensor | None, h: torch.Tensor, c: torch.Tensor):
        z = self.gates(h if x is None else torch.cat([x, h], dim=1))
        i, f, o, g = torch.chunk(z, 4, dim=1)
        i = torch.sigmoid(i + self.peephole[0] * c)
        f = torch.sigmoid(f + self.peephole[1] * c)
        o = torch.sigmoid(o + self.peephole[2] * c)
        c = f * c + i * torch.tanh(g)
        h = o * torch.tanh(c)
        return h, c
