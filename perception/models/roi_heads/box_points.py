"""The LiDAR points around a box, in that box's own frame.

Frames/units: ``points`` rows ``x, y, z, intensity, time_lag, ...`` (metres, 0-255, seconds) and ``boxes``
``(M, 9)`` ``x, y, z`` gravity centre, ``l, w, h``, ``yaw`` (rad, CCW about +z from x), ``vx, vy`` in ONE
frame (the augmented LiDAR frame in training, the LiDAR frame at inference). The box frame has its origin
at the box's gravity centre, x along the box's heading (length), y to its left (width), z up.
"""

import torch


def to_box_frame(xy, boxes):
    """``xy (..., M, N, 2)`` or ``(M, 2)`` points in the common frame -> the same points in each box's frame
    (rotation by ``-yaw`` about the box centre)."""
    c, s = boxes[..., 6].cos(), boxes[..., 6].sin()
    while c.dim() < xy.dim() - 1:
        c, s = c[..., None], s[..., None]
    centre = boxes[..., :2]
    while centre.dim() < xy.dim():
        centre = centre[..., None, :]
    dx, dy = (xy - centre).unbind(-1)
    return torch.stack([c * dx + s * dy, -s * dx + c * dy], dim=-1)


def _point_keys(n, random_pick, device):
    """A random (training) or fixed pseudo-random (Knuth's multiplicative hash) order key in [0, 1) per point."""
    if random_pick:
        return torch.rand(n, device=device)
    return ((torch.arange(n, device=device) * 2654435761) % 4294967296).to(torch.float64) / 4294967296.0


def gather_box_points(points, boxes, margin, max_points, random_pick=False, cell=2.0, cell_cap=32):
    """Up to ``max_points`` points inside each box grown by ``margin`` metres on every side.

    Returns ``(local (M, P, C), mask (M, P))``: ``local[..., :3]`` the point in the box frame (metres, z from
    the gravity centre), the other channels copied; ``mask`` marks real points (the rest are zeros). When a
    box holds more than P points, a random subset is kept (``random_pick``, training) or a fixed one (a hash
    of the point index: the same frame gives the same result).

    Cost: the points are binned once into BEV cells of ``cell`` metres holding at most ``cell_cap`` points
    each (a random / fixed subset of a crowded cell, like hard voxelization); a box only tests the points of
    the cells under its bounding circle, not the whole cloud.
    """
    m, c = boxes.shape[0], points.shape[1]
    p = int(max_points)
    local = points.new_zeros(m, p, c)
    mask = torch.zeros(m, p, dtype=torch.bool, device=points.device)
    if m == 0 or points.shape[0] == 0:
        return local, mask
    n, device = points.shape[0], points.device
    keys = _point_keys(n, random_pick, device)
    # Cell table: (cells, cell_cap) point indices (-1 = empty), each cell's points in key order.
    origin = points[:, :2].min(0).values
    ij = ((points[:, :2] - origin) / cell).floor().long()
    nx, ny = int(ij[:, 0].max()) + 1, int(ij[:, 1].max()) + 1
    cid = ij[:, 0] * ny + ij[:, 1]
    order = (cid.to(torch.float64) + keys.to(torch.float64) * 0.5).argsort()
    cid_sorted = cid[order]
    rank = torch.arange(n, device=device) - torch.searchsorted(cid_sorted, cid_sorted)
    keep = rank < cell_cap
    table = torch.full((nx * ny + 1, cell_cap), -1, dtype=torch.long, device=device)  # last row: outside
    table[cid_sorted[keep], rank[keep]] = order[keep]
    # Candidate cells of each box: the W x W block under its bounding circle.
    half = boxes[:, 3:6] / 2 + margin  # (M, 3) grown half sizes
    reach = half[:, :2].norm(dim=1)
    w = int(torch.ceil(2 * reach.max() / cell)) + 1
    first = ((boxes[:, :2] - reach[:, None] - origin) / cell).floor().long()  # (M, 2)
    steps = torch.arange(w, device=device)
    ci, cj = first[:, 0, None] + steps, first[:, 1, None] + steps  # (M, W)
    cells = ci[:, :, None] * ny + cj[:, None, :]  # (M, W, W)
    outside = (ci < 0)[:, :, None] | (ci >= nx)[:, :, None] | (cj < 0)[:, None, :] | (cj >= ny)[:, None, :]
    cells = cells.masked_fill(outside, nx * ny).flatten(1)
    idx = table[cells].flatten(1)  # (M, W * W * cap)
    present = idx >= 0
    cand = points[idx.clamp(min=0)]  # (M, S, C)
    xy = to_box_frame(cand[..., :2], boxes)
    z = cand[..., 2] - boxes[:, 2:3]
    inside = (present & (xy[..., 0].abs() <= half[:, None, 0]) & (xy[..., 1].abs() <= half[:, None, 1])
              & (z.abs() <= half[:, None, 2]))
    k = min(p, idx.shape[1])
    score, pick = torch.where(inside, keys[idx.clamp(min=0)], keys.new_full((), -1.0)).topk(k, dim=1)  # (M, k)
    chosen = score >= 0
    rows = torch.cat([xy.gather(1, pick[..., None].expand(-1, -1, 2)), z.gather(1, pick)[..., None],
                      cand.gather(1, pick[..., None].expand(-1, -1, c))[..., 3:]], dim=-1)
    local[:, :k] = rows * chosen[..., None]
    mask[:, :k] = chosen
    return local, mask
