"""Per-cell LiDAR cues for the BEV-map head, on the map grid itself, and the small refiner that reads them.

The fused BEV of a small model is coarse (tiny: 1.6 m cells) while a map cell is 0.5 m and the thin classes
(divider, stop line, crossing stripes) are a cell or two wide: sampled from the coarse BEV, their logits are
blurred over ~3 cells. Painted lines return more laser light than asphalt, and kerbs step the ground, both at
the map grid's scale in the raw points. So the points are binned straight into the map grid's cells
(``BEV_MAP_GRID``, ORIGINAL LiDAR frame: the augmented points are mapped back through ``inv(bev_aug)``) and each
cell gets (metres, intensity 0-255 as in the nuScenes ``.pcd.bin``):

- ``log(1 + count)`` of its points;
- the max and the mean intensity / 255;
- the lowest z / 2 (clamped to [-2, 2]) and the height span ``(z_max - z_min) / 4`` (clamped to [0, 1]);

empty cells read zeros. A sample without LiDAR (``lidar_mask`` False) reads zeros everywhere, and the refiner
corrects only the samples with a point on the grid: without LiDAR the map is exactly the BEV-only map. The cues
are computed outside the network (``MapTask.dense_inputs``: an input of the exported graph, as the occupancy
cues).
"""

import torch
import torch.nn as nn

NUM_MAP_CUES = 5


def map_cell_cues(points, bev_aug, grid):
    """``points`` ``(N, >=4)`` x, y, z (m), intensity (0-255) in the AUGMENTED LiDAR frame, ``bev_aug`` ``(4, 4)``
    (original -> augmented) -> cues ``(5, NX, NY)`` on ``grid`` (a 2D ``GridSpec`` in the original LiDAR frame)."""
    nx, ny = grid.shape
    a = bev_aug.to(torch.float64)
    xyz = points[:, :3].to(torch.float64)
    orig = torch.linalg.solve(a[:3, :3], (xyz - a[:3, 3]).T).T  # (N, 3) original LiDAR frame, metres
    ix = torch.floor((orig[:, 0] - grid.lower[0]) / grid.size[0]).long()
    iy = torch.floor((orig[:, 1] - grid.lower[1]) / grid.size[1]).long()
    keep = (ix >= 0) & (ix < nx) & (iy >= 0) & (iy < ny)
    flat = ix[keep] * ny + iy[keep]  # (M,) cell index, x-major as the map grid
    inten = points[keep, 3].to(torch.float32) / 255.0
    z = orig[keep, 2].to(torch.float32)
    count = torch.bincount(flat, minlength=nx * ny).to(torch.float32)
    occupied = count > 0
    i_max = torch.zeros(nx * ny, device=flat.device).scatter_reduce_(0, flat, inten, "amax")
    i_mean = torch.bincount(flat, weights=inten, minlength=nx * ny).to(torch.float32) / count.clamp(min=1)
    z_min = torch.full((nx * ny,), float("inf"), device=flat.device).scatter_reduce_(0, flat, z, "amin")
    z_max = torch.full((nx * ny,), float("-inf"), device=flat.device).scatter_reduce_(0, flat, z, "amax")
    z_low = torch.where(occupied, (z_min / 2).clamp(-2, 2), torch.zeros_like(count))
    span = torch.where(occupied, ((z_max - z_min) / 4).clamp(0, 1), torch.zeros_like(count))
    cues = torch.stack([torch.log1p(count), i_max, i_mean, z_low, span])  # (5, NX*NY)
    return cues.reshape(NUM_MAP_CUES, nx, ny)


def map_cues(points, lidar_mask, bev_aug, grid):
    """Per sample :func:`map_cell_cues` -> ``(B, 5, NX, NY)``; zeros for samples without LiDAR."""
    nx, ny = grid.shape
    out = torch.zeros(len(points), NUM_MAP_CUES, nx, ny, device=bev_aug.device)
    for i, pts in enumerate(points):
        if bool(lidar_mask[i]) and pts.shape[0] > 0:
            out[i] = map_cell_cues(pts.to(bev_aug.device), bev_aug[i], grid)
    return out


class MapCueRefiner(nn.Module):
    """``forward(logits (B, K, NX, NY), cues (B, 5, NX, NY)) -> refined logits (B, K, NX, NY)``:
    ``logits + present * f([logits, cues])`` (``present``: the sample has a point on the grid), ``f`` two 3 x 3
    convolutions (1.5 m of context on the 0.5 m grid) and a 1 x 1 one. The last one starts at zero, so training
    starts from the BEV-only map; ``logits`` are detached."""

    def __init__(self, num_classes, channels=16):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(num_classes + NUM_MAP_CUES, channels, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(channels, num_classes, 1))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, logits, cues):
        # detached: the refiner's loss trains the refiner alone, so the BEV-only map (what a frame without LiDAR
        # gets) and the shared features are trained as without it
        base = logits.detach()
        cues = cues.to(base.device, base.dtype)
        x = torch.cat([base, cues], dim=1)  # (B, K + 5, NX, NY)
        present = (cues[:, :1].flatten(1).amax(1) > 0).to(base.dtype)[:, None, None, None]  # (B, 1, 1, 1)
        return base + present * self.net(x)  # (B, K, NX, NY)
