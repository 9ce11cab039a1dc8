"""VMamba-style 2D selective scan (SS2D) over x-first BEV maps ``(B, C, X, Y)``.

The ``X * Y`` tokens are scanned in four orders, each with its own projections, step sizes, ``A`` and ``D``:
0 row-major (``ix * Y + iy``: consecutive tokens step along y), 1 column-major (``iy * X + ix``: steps along
x), 2 and 3 the reverses of 0 and 1. The four outputs are put back in place, summed, layer-normalised and
gated by ``SiLU(z)``.
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from perception.models.decoder.selective_scan import selective_scan

NUM_ORDERS = 4


def scan_orders(x):
    """``(B, D, X, Y)`` -> ``(B, 4, D, X*Y)``: the token sequences in the four scan orders."""
    row = x.flatten(2)
    col = x.transpose(2, 3).flatten(2)
    return torch.stack([row, col, row.flip(-1), col.flip(-1)], dim=1)


def invert_order(seq, order, nx, ny):
    """Put a ``(B, D, X*Y)`` sequence in scan order ``order`` back on the ``(B, D, X, Y)`` grid."""
    b, d, _ = seq.shape
    if order >= 2:
        seq = seq.flip(-1)
    if order % 2 == 0:
        return seq.reshape(b, d, nx, ny)
    return seq.reshape(b, d, ny, nx).transpose(2, 3)


def merge_orders(seqs, nx, ny):
    """``(B, 4, D, X*Y)`` -> ``(B, D, X, Y)``: each order inverted, then summed."""
    return sum(invert_order(seqs[:, k], k, nx, ny) for k in range(NUM_ORDERS))


class SS2D(nn.Module):
    """SS2D block body (no residual): ``(B, C, X, Y) -> (B, C, X, Y)``.

    ``d_state`` 16, ``expand`` 2 (inner width ``expand * d_model``), depthwise 3x3 conv + SiLU on the x
    branch, ``dt_rank = ceil(d_model / 16)``.
    """

    def __init__(self, d_model, d_state=16, expand=2, dt_rank=None):
        super().__init__()
        d_inner = expand * d_model
        self.d_inner, self.d_state = d_inner, d_state
        self.dt_rank = dt_rank or math.ceil(d_model / 16)
        k = NUM_ORDERS
        self.in_proj = nn.Linear(d_model, 2 * d_inner, bias=False)
        self.conv = nn.Conv2d(d_inner, d_inner, 3, padding=1, groups=d_inner)
        self.x_proj_weight = nn.Parameter(torch.randn(k, self.dt_rank + 2 * d_state, d_inner) / math.sqrt(d_inner))
        self.dt_proj_weight = nn.Parameter(
            torch.empty(k, d_inner, self.dt_rank).uniform_(-self.dt_rank**-0.5, self.dt_rank**-0.5)
        )
        # Mamba's dt init: softplus(dt_bias) log-uniform in [1e-3, 1e-1].
        dt = torch.exp(torch.rand(k, d_inner) * (math.log(0.1) - math.log(1e-3)) + math.log(1e-3))
        self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))
        self.A_log = nn.Parameter(torch.log(torch.arange(1, d_state + 1, dtype=torch.float32)).repeat(k * d_inner, 1))
        self.Ds = nn.Parameter(torch.ones(k * d_inner))
        self.out_norm = nn.LayerNorm(d_inner)
        self.out_proj = nn.Linear(d_inner, d_model, bias=False)

    def forward(self, x):
        b, _, nx, ny = x.shape
        xz = self.in_proj(x.permute(0, 2, 3, 1))  # (B, X, Y, 2 * Di)
        xi, z = xz.chunk(2, dim=-1)
        xi = F.silu(self.conv(xi.permute(0, 3, 1, 2).contiguous()))  # (B, Di, X, Y)
        xs = scan_orders(xi)  # (B, K, Di, L)
        x_dbl = torch.einsum("bkdl,kcd->bkcl", xs, self.x_proj_weight)
        dts, Bs, Cs = torch.split(x_dbl, [self.dt_rank, self.d_state, self.d_state], dim=2)
        dts = torch.einsum("bkrl,kdr->bkdl", dts, self.dt_proj_weight)
        length = nx * ny
        y = selective_scan(
            xs.reshape(b, -1, length), dts.reshape(b, -1, length), -torch.exp(self.A_log), Bs.contiguous(),
            Cs.contiguous(), D=self.Ds, delta_bias=self.dt_bias.flatten(), delta_softplus=True,
        )
        y = merge_orders(y.reshape(b, NUM_ORDERS, self.d_inner, length), nx, ny)
        y = self.out_norm(y.permute(0, 2, 3, 1)) * F.silu(z)
        return self.out_proj(y).permute(0, 3, 1, 2)
