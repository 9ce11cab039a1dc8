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


def centre_cells(boxes, point_cloud_range, bev_cell):
    """Where box centres fall on the x-first BEV grid: ``(xy (M, 2) float64 in cells from the grid corner,
    cell (M, 2) int64 = floor(xy))``; ``boxes`` ``(M, >=2)`` metres, augmented LiDAR frame. The one place the
    heatmap peak, the offset targets and the heatmap loss's object count take "the cell of a centre" from
    (float64 on the CPU, so a centre on a cell border falls on the same side for all three)."""
    xy = (boxes[:, :2].detach().cpu().double() - torch.tensor(point_cloud_range[:2], dtype=torch.float64)) / bev_cell
    return xy, torch.floor(xy).long()


def on_grid(cell, bev_shape):
    """``(..., 2)`` int64 cells -> bool, True inside the ``(X, Y)`` grid."""
    return (cell[..., 0] >= 0) & (cell[..., 0] < bev_shape[0]) & (cell[..., 1] >= 0) & (cell[..., 1] < bev_shape[1])


def offset_targets(boxes, point_cloud_range, bev_cell, bev_shape, radius=1):
    """Dense centre-offset targets for one sample: ``(cells (N,) int64 flat ix * Y + iy, offsets (N, 2))``.

    Every cell within ``radius`` cells (Chebyshev) of the cell holding a box centre gets the offset from its
    own centre to the box centre, in cells (x, y); ``boxes`` ``(M, 9)`` metres, augmented LiDAR frame.
    """
    ny = bev_shape[1]
    xy, centre = centre_cells(boxes, point_cloud_range, bev_cell)
    steps = torch.arange(-radius, radius + 1)
    dx, dy = torch.meshgrid(steps, steps, indexing="ij")
    cell = centre[:, None, :] + torch.stack([dx.flatten(), dy.flatten()], -1)[None]  # (M, n, 2)
    offset = (xy[:, None, :] - (cell.double() + 0.5)).float()
    inside = on_grid(cell, bev_shape)
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
    _, cells = centre_cells(boxes, point_cloud_range, bev_cell)
    inside = on_grid(cells, bev_shape).tolist()
    rows = zip(boxes.detach().cpu().tolist(), labels.detach().cpu().tolist(), cells.tolist(), inside, strict=True)
    for box, label, (ix, iy), keep in rows:
        if not 0 <= label < num_classes:
            raise ValueError(f"gt_labels: label {label} outside [0, {num_classes})")
        if not keep:
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
