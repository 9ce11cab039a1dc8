"""Gaussian centre heatmap targets (CenterPoint / TransFusion) on the x-first BEV grid."""

import math

import torch


def gaussian_radius(length_cells, width_cells, min_overlap=0.1):
    """CenterNet radius (cells) such that a box shifted by it keeps IoU >= ``min_overlap`` (smallest of 3 cases)."""
    h, w = length_cells, width_cells
    b1 = h + w
    c1 = w * h * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + math.sqrt(b1**2 - 4 * c1)) / 2
    b2 = 2 * (h + w)
    c2 = (1 - min_overlap) * w * h
    r2 = (b2 + math.sqrt(b2**2 - 16 * c2)) / 2
    a3 = 4 * min_overlap
    b3 = -2 * min_overlap * (h + w)
    c3 = (min_overlap - 1) * w * h
    r3 = (b3 + math.sqrt(b3**2 - 4 * a3 * c3)) / 2
    return min(r1, r2, r3)


def offset_targets(boxes, point_cloud_range, bev_cell, bev_shape, radius=1):
    """Dense centre-offset targets for one sample: ``(cells (N,) int64 flat ix * Y + iy, offsets (N, 2))``.

    Every cell within ``radius`` cells (Chebyshev) of the cell holding a box centre gets the offset from its
    own centre to the box centre, in cells (x, y); ``boxes`` ``(M, 9)`` metres, augmented LiDAR frame.
    """
    nx, ny = bev_shape
    xy = (boxes[:, :2].detach().float().cpu() - torch.tensor(point_cloud_range[:2])) / bev_cell  # in cells
    centre = torch.floor(xy).long()
    steps = torch.arange(-radius, radius + 1)
    dx, dy = torch.meshgrid(steps, steps, indexing="ij")
    cell = centre[:, None, :] + torch.stack([dx.flatten(), dy.flatten()], -1)[None]  # (M, n, 2)
    offset = xy[:, None, :] - (cell.float() + 0.5)
    inside = (cell[..., 0] >= 0) & (cell[..., 0] < nx) & (cell[..., 1] >= 0) & (cell[..., 1] < ny)
    return (cell[..., 0] * ny + cell[..., 1])[inside], offset[inside]


def draw_heatmap_target(boxes, labels, num_classes, point_cloud_range, bev_cell, bev_shape, min_radius=2):
    """Heatmap target ``(num_classes, X, Y)`` float32 for one sample.

    ``boxes`` ``(M, 9)`` in the augmented LiDAR frame (metres), ``labels`` ``(M,)`` int64. Each box draws a
    Gaussian (sigma = diameter / 6) of value exactly 1 at the cell containing its centre, element-wise max
    with the rest. Boxes whose centre is outside the grid are left out of the heatmap (they still take part
    in the matching loss).
    """
    nx, ny = bev_shape
    heat = torch.zeros(num_classes, nx, ny)
    x0, y0 = point_cloud_range[0], point_cloud_range[1]
    for box, label in zip(boxes.detach().cpu().tolist(), labels.detach().cpu().tolist()):
        if not 0 <= label < num_classes:
            raise ValueError(f"gt_labels: label {label} outside [0, {num_classes})")
        ix = int(math.floor((box[0] - x0) / bev_cell))
        iy = int(math.floor((box[1] - y0) / bev_cell))
        if not (0 <= ix < nx and 0 <= iy < ny):
            continue
        r = max(min_radius, int(gaussian_radius(box[3] / bev_cell, box[4] / bev_cell)))
        sigma = (2 * r + 1) / 6
        dx = torch.arange(-r, r + 1, dtype=torch.float32)
        g = torch.exp(-(dx[:, None] ** 2 + dx[None, :] ** 2) / (2 * sigma**2))
        lx, hx = max(0, ix - r), min(nx, ix + r + 1)
        ly, hy = max(0, iy - r), min(ny, iy + r + 1)
        patch = g[lx - ix + r : hx - ix + r, ly - iy + r : hy - iy + r]
        heat[label, lx:hx, ly:hy] = torch.maximum(heat[label, lx:hx, ly:hy], patch)
    return heat
