"""Encoding of (M, 9) LiDAR-frame boxes relative to BEV cells, and decoding back.

Boxes: ``x, y, z`` gravity centre (m), ``l, w, h`` (m), ``yaw`` (rad, CCW about +z from LiDAR x),
``vx, vy`` (m/s), augmented LiDAR frame. Regression code (10 values), relative to a BEV cell ``(ix, iy)``:
``dx, dy`` = centre offset from the cell centre in cells; ``z`` (m); ``log l, log w, log h``;
``sin yaw, cos yaw``; ``vx, vy``.
"""

import torch

CODE_SIZE = 10


def cell_centers_xy(cell_index, point_cloud_range, bev_cell, bev_shape):
    """Flat cell indices ``(...,)`` over an ``(X, Y)`` grid (``ix * Y + iy``) -> cell centres ``(..., 2)`` m."""
    ny = bev_shape[1]
    ix = torch.div(cell_index, ny, rounding_mode="floor")
    iy = cell_index % ny
    x = point_cloud_range[0] + (ix.to(torch.float32) + 0.5) * bev_cell
    y = point_cloud_range[1] + (iy.to(torch.float32) + 0.5) * bev_cell
    return torch.stack([x, y], dim=-1)


def encode_boxes(boxes, centers_xy, bev_cell):
    """``(..., 9)`` boxes + reference cell centres ``(..., 2)`` -> ``(..., 10)`` regression code.

    NaN velocities stay NaN (the loss masks them).
    """
    if boxes.shape[-1] != 9:
        raise ValueError(f"encode_boxes: boxes must be (..., 9), got {tuple(boxes.shape)}")
    off = (boxes[..., :2] - centers_xy) / bev_cell
    size = boxes[..., 3:6].clamp(min=1e-3).log()
    yaw = boxes[..., 6:7]
    return torch.cat([off, boxes[..., 2:3], size, yaw.sin(), yaw.cos(), boxes[..., 7:9]], dim=-1)


def decode_boxes(code, centers_xy, bev_cell):
    """``(..., 10)`` regression code + reference cell centres ``(..., 2)`` -> ``(..., 9)`` boxes.

    ``l, w, h = exp(log-size)``; ``yaw = atan2(sin, cos)`` in (-pi, pi].
    """
    if code.shape[-1] != CODE_SIZE:
        raise ValueError(f"decode_boxes: code must be (..., {CODE_SIZE}), got {tuple(code.shape)}")
    xy = centers_xy + code[..., :2] * bev_cell
    size = code[..., 3:6].exp()
    yaw = torch.atan2(code[..., 6:7], code[..., 7:8])
    return torch.cat([xy, code[..., 2:3], size, yaw, code[..., 8:10]], dim=-1)
