"""Layers built on the ops: the user's mixing identity.

A 1x1 mix over the dense output,   y_l = sum_{j,k} a_{ljk} (x_j * h_k),
equals a sparse conv of mixed inputs, y_l = (A x)_l * (B h)_l,   when a_{ljk} = A_{lj} B_{lk}.
DenseMix has n*m*l parameters; FactoredMix has (n+m)*l. The user trains the dense form first and
switches to the factored form once it works.
"""
import math

import torch
from torch import nn

from .functional import dense_mix_conv2d, sparse_conv2d


class DenseMix(nn.Module):
    """dense_conv2d followed by a learned 1x1 mix of its Ci*Cr channels to out_channels (dense_mix_conv2d:
    the mix is applied to the responses first, so the Ci*Cr dense planes are never stored)."""

    def __init__(self, impulse_channels: int, response_channels: int, out_channels: int):
        super().__init__()
        self.impulse_channels, self.response_channels = impulse_channels, response_channels
        # weight[l, j, k] = a_{ljk}; the dense output's channel j*Cr + k is impulse j with response k.
        self.weight = nn.Parameter(torch.empty(out_channels, impulse_channels, response_channels))
        nn.init.normal_(self.weight, std=1.0 / math.sqrt(impulse_channels * response_channels))

    def forward(self, response: torch.Tensor, impulse: torch.Tensor) -> torch.Tensor:
        return dense_mix_conv2d(response, impulse, self.weight.to(impulse.dtype))  # [B, out, H, W]


class FactoredMix(nn.Module):
    """Rank-1 per output channel: y_l = (A x)_l * (B h)_l, one sparse_conv2d instead of Ci*Cr convolutions."""

    def __init__(self, impulse_channels: int, response_channels: int, out_channels: int):
        super().__init__()
        self.impulse_mix = nn.Parameter(torch.empty(out_channels, impulse_channels))    # A
        self.response_mix = nn.Parameter(torch.empty(out_channels, response_channels))  # B
        nn.init.normal_(self.impulse_mix, std=1.0 / math.sqrt(impulse_channels))
        nn.init.normal_(self.response_mix, std=1.0 / math.sqrt(response_channels))

    def forward(self, response: torch.Tensor, impulse: torch.Tensor) -> torch.Tensor:
        u = torch.einsum("lj,bjhw->blhw", self.impulse_mix.to(impulse.dtype), impulse)
        v = torch.einsum("lk,bkhw->blhw", self.response_mix.to(response.dtype), response)
        return sparse_conv2d(v, u)

    def to_dense(self) -> DenseMix:
        """The DenseMix computing the same function: a_{ljk} = A_{lj} B_{lk}."""
        out_channels, ci = self.impulse_mix.shape
        dense = DenseMix(ci, self.response_mix.shape[1], out_channels).to(self.impulse_mix)
        with torch.no_grad():
            dense.weight.copy_(torch.einsum("lj,lk->ljk", self.impulse_mix, self.response_mix))
        return dense
