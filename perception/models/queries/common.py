"""Small helpers shared by the query initialisers."""

import torch
import torch.nn as nn


def conv_bn_relu(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def gather_cells(bev, cell_index):
    """Features of ``bev`` ``(B, C, X, Y)`` at flat cells ``(B, Q)`` (``ix * Y + iy``) -> ``(B, Q, C)``."""
    flat = bev.flatten(2)
    idx = cell_index[:, None, :].expand(-1, flat.shape[1], -1)
    return flat.gather(2, idx).transpose(1, 2)


def cells_to_normalized(cell_index, nx, ny):
    """Flat cell indices ``(...)`` -> normalized cell centres ``(..., 2)`` = ((ix + .5) / X, (iy + .5) / Y)."""
    ix = torch.div(cell_index, ny, rounding_mode="floor").to(torch.float32)
    iy = (cell_index % ny).to(torch.float32)
    return torch.stack([(ix + 0.5) / nx, (iy + 0.5) / ny], dim=-1)
