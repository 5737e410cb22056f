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
    """dense_conv2d followed by a learned 1x1 mix of its Ci*Cr channels to out_channels, computed by
    dense_mix_conv2d (the mix is applied to the responses first: the Ci*Cr dense planes are never stored).

        y[b, l] = sum_{j,k} weight[l, j, k] * dense_conv2d(response, impulse)[b, j*Cr + k]

    Args:
        impulse_channels: Ci, the impulse's channels.
        response_channels: Cr, the response's channels.
        out_channels: L, the output's channels.

    Parameters: weight [L, Ci, Cr] (a_ljk; torch's default dtype, normal with std 1/sqrt(Ci*Cr)); move
    or cast the module as any nn.Module. Ci*Cr*L parameters; FactoredMix is the rank-1 form with (Ci+Cr)*L.

    Example:
        y = DenseMix(4, 5, 8)(torch.randn(2, 5, 3, 3), torch.randn(2, 4, 9, 11))  # [2, 8, 9, 11]
    """

    def __init__(self, impulse_channels: int, response_channels: int, out_channels: int):
        super().__init__()
        self.impulse_channels, self.response_channels = impulse_channels, response_channels
        # weight[l, j, k] = a_{ljk}; the dense output's channel j*Cr + k is impulse j with response k.
        self.weight = nn.Parameter(torch.empty(out_channels, impulse_channels, response_channels))
        nn.init.normal_(self.weight, std=1.0 / math.sqrt(impulse_channels * response_channels))

    def forward(self, response: torch.Tensor, impulse: torch.Tensor) -> torch.Tensor:
        """response [B, Cr, Hr, Wr], impulse [B, Ci, Hi, Wi] -> y [B, L, Hi, Wi].

        Dtypes and devices as dense_conv2d (the weight is cast to the inputs' dtype; it must be on
        their device). Raises what dense_mix_conv2d raises, e.g. when the inputs' Ci or Cr differs
        from the layer's.
        """
        return dense_mix_conv2d(response, impulse, self.weight.to(impulse.dtype))  # [B, out, H, W]


class FactoredMix(nn.Module):
    """Rank-1 per output channel: y_l = (A x)_l * (B h)_l, one sparse_conv2d instead of Ci*Cr convolutions.

        y[b, l] = sparse_conv2d(sum_k B[l, k] response[b, k], sum_j A[l, j] impulse[b, j])

    equals DenseMix with weight[l, j, k] = A[l, j] * B[l, k] (see to_dense).

    Args:
        impulse_channels: Ci, the impulse's channels.
        response_channels: Cr, the response's channels.
        out_channels: L, the output's channels.

    Parameters: impulse_mix (A) [L, Ci] and response_mix (B) [L, Cr] (torch's default dtype, normal with std
    1/sqrt(Ci) and 1/sqrt(Cr)): (Ci+Cr)*L parameters.

    Example:
        y = FactoredMix(4, 5, 8)(torch.randn(2, 5, 3, 3), torch.randn(2, 4, 9, 11))  # [2, 8, 9, 11]
    """

    def __init__(self, impulse_channels: int, response_channels: int, out_channels: int):
        super().__init__()
        self.impulse_mix = nn.Parameter(torch.empty(out_channels, impulse_channels))    # A
        self.response_mix = nn.Parameter(torch.empty(out_channels, response_channels))  # B
        nn.init.normal_(self.impulse_mix, std=1.0 / math.sqrt(impulse_channels))
        nn.init.normal_(self.response_mix, std=1.0 / math.sqrt(response_channels))

    def forward(self, response: torch.Tensor, impulse: torch.Tensor) -> torch.Tensor:
        """response [B, Cr, Hr, Wr], impulse [B, Ci, Hi, Wi] -> y [B, L, Hi, Wi].

        Dtypes and devices as sparse_conv2d (the mixing matrices are cast to the inputs' dtypes; they
        must be on their device). Raises what sparse_conv2d raises, and RuntimeError (from einsum) when
        the inputs' channels differ from the layer's Ci, Cr.
        """
        u = torch.einsum("lj,bjhw->blhw", self.impulse_mix.to(impulse.dtype), impulse)
        v = torch.einsum("lk,bkhw->blhw", self.response_mix.to(response.dtype), response)
        return sparse_conv2d(v, u)

    def to_dense(self) -> DenseMix:
        """The DenseMix computing the same function: weight [L, Ci, Cr] with a_{ljk} = A_{lj} B_{lk}.

        A new module (no parameters shared), on this module's device and in its dtype.
        """
        out_channels, ci = self.impulse_mix.shape
        dense = DenseMix(ci, self.response_mix.shape[1], out_channels).to(self.impulse_mix)
        with torch.no_grad():
            dense.weight.copy_(torch.einsum("lj,lk->ljk", self.impulse_mix, self.response_mix))
        return dense
