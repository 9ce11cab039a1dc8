"""Sparse 3D convolution LiDAR encoder (spconv), as in the published M3Net / SECOND.

Mean voxel features -> SubMConv3d stem (16) -> ResNet stages 16/32/64/128 at strides 1/2/4/8 -> dense ->
height compression (z folded into channels) -> 1x1 conv to ``out_channels``. Indices are
``[b, ix, iy, iz]`` with ``spatial_shape = (nx, ny, nz)`` so the dense tensor is ``(B, C, X, Y, Z)`` and the
BEV output ``(B, C, X, Y)`` is x-first like every BEV map of the project.

``spconv`` is optional: import :data:`SPCONV_AVAILABLE` before building :class:`SparseEncoder`.
"""

import torch
from torch import nn

try:
    import spconv.pytorch as spconv

    SPCONV_AVAILABLE = True
except ImportError:  # optional dependency; LidarEncoder falls back to pillars
    spconv = None
    SPCONV_AVAILABLE = False


def _sparse_block(in_channels, out_channels, stride, key):
    """Strided SparseConv3d (stride > 1) or SubMConv3d (stride 1), then BN + ReLU."""
    if stride > 1:
        conv = spconv.SparseConv3d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False, indice_key=key)
    else:
        conv = spconv.SubMConv3d(in_channels, out_channels, 3, padding=1, bias=False, indice_key=key)
    return spconv.SparseSequential(conv, nn.BatchNorm1d(out_channels), nn.ReLU(inplace=True))


class _SparseBasicBlock(nn.Module):
    """Residual block of two SubMConv3d layers (shared ``indice_key``)."""

    def __init__(self, channels, key):
        super().__init__()
        self.conv1 = _sparse_block(channels, channels, 1, key)
        self.conv2 = spconv.SubMConv3d(channels, channels, 3, padding=1, bias=False, indice_key=key)
        self.norm2 = nn.BatchNorm1d(channels)

    def forward(self, x):
        out = self.conv2(self.conv1(x))
        return out.replace_feature(torch.relu(self.norm2(out.features) + x.features))


class SparseEncoder(nn.Module):
    """Sparse ResNet over a voxel grid ``grid_shape = (nx, ny, nz)``; output ``(B, out_channels, nx/8, ny/8)``."""

    def __init__(self, in_channels, grid_shape, out_channels, channels=(16, 32, 64, 128)):
        super().__init__()
        if not SPCONV_AVAILABLE:
            raise ImportError("SparseEncoder needs spconv (pip install spconv-cu1xx); use backbone='pillar'")
        self.grid_shape = tuple(int(n) for n in grid_shape)
        self.stem = _sparse_block(in_channels, channels[0], 1, "subm0")
        stages = []
        previous = channels[0]
        for i, ch in enumerate(channels):
            stride = 1 if i == 0 else 2
            key = f"subm{i}"
            stages.append(
                spconv.SparseSequential(
                    _sparse_block(previous, ch, stride, f"down{i}") if stride > 1 else spconv.SparseSequential(),
                    _SparseBasicBlock(ch, key),
                    _SparseBasicBlock(ch, key),
                )
            )
            previous = ch
        self.stages = nn.ModuleList(stages)
        depth = self.grid_shape[2]
        for _ in range(len(channels) - 1):
            depth = (depth - 1) // 2 + 1  # kernel 3, stride 2, padding 1
        self.compress = nn.Sequential(
            nn.Conv2d(previous * depth, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, features, coords, batch_size):
        """``features (V, C)`` mean voxel features, ``coords (V, 4)`` int ``[b, ix, iy, iz]``."""
        x = spconv.SparseConvTensor(features, coords.int(), list(self.grid_shape), batch_size)
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        dense = x.dense()  # (B, C, X, Y, Z)
        b, c, nx, ny, nz = dense.shape
        # Height compression: fold z into channels, keeping the x-first (X, Y) layout.
        bev = dense.permute(0, 1, 4, 2, 3).reshape(b, c * nz, nx, ny)
        return self.compress(bev)
