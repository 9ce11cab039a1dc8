"""Per-voxel LiDAR cues for the occupancy head: where the points are, and which side of them a voxel lies.

The fused BEV of a small model is coarse (tiny: 1.6 m cells) while an Occ3D voxel is 0.4 m, and the labels
that count (``mask_camera``) are mostly the first surface each ray meets. The raw point cloud resolves both
at voxel scale, so the head also reads, at every voxel centre ``p`` (augmented LiDAR frame, metres):

- ``hits``: log(1 + points) around ``p``, trilinear in count grids of 0.4 m and of 0.8 m cells over
  ``point_cloud_range`` (the coarse one reaches a surface the beams skipped between two rings; a 3 x 3 x 3
  max-pool of the fine grid did the same at ~10x the cost on CPU);
- ``free`` / ``behind``: the signed distance along the sensor ray through ``p`` from ``p`` to the first
  return, ``d = r_return - |p - o|`` with ``o`` the sensor origin: ``free = clamp(d, 0, 4) / 4`` (the beam
  passed through ``p``), ``behind = clamp(-d, 0, 4) / 4`` (``p`` is occluded). The returns come from a range
  image of the keyframe sweep (points with time lag 0: past sweeps were taken from other origins) binned
  by elevation and azimuth around ``o``; an empty bin takes the nearest return of the bins above/below it
  (a beam gap);
- ``no_return``: 1 where the ray through ``p`` has no return (sky, out of range);
- ``present``: 1 for a sample with LiDAR. A sample without LiDAR (``lidar_mask`` False) reads all zeros,
  so the head falls back on the BEV features.

No learned parameters: the occupancy head's cue refiner (:class:`perception.models.heads.occ_head.OccHead`)
combines them with the BEV features.

In eval mode each voxel's range-image bin and distance to the sensor are kept between frames while the voxel
centres and the origin stay the same (a fixed rig evaluates the same 640k Occ3D centres every frame): the cues
then cost about half (docs/benchmarks.md), with the same values (``tests/test_speed_equivalence.py``).
"""

import math

import torch
import torch.nn.functional as F

from perception.models.heads.bev_sampling import sample_volume

NUM_CUES = 6
PRESENT_CUE = 5  # the channel that is 1 for a sample with LiDAR points, 0 without
FREE_RANGE_M = 4.0  # metres of free / occluded distance the cues resolve


class LidarOccCues(torch.nn.Module):
    """``forward(points list of (N_i, >=3), lidar_mask (B,), origins (B, 3), xyz (B, ..., 3)) -> (B, 6, ...)``.

    ``points`` and ``xyz`` in the augmented LiDAR frame (metres); ``origins`` the sensor origin there
    (``bev_aug[:, :3, 3]``). ``voxel``: cell of the count grid; ``elevation_bin_deg`` / ``azimuth_bin_deg``:
    range-image bins (1 deg rows fall between the 1.33 deg rings of a 32-beam sensor: the gap fill covers it).
    """

    def __init__(self, point_cloud_range, voxel=0.4, elevation_bin_deg=1.0, azimuth_bin_deg=0.5,
                 elevation_range_deg=(-40.0, 20.0)):
        super().__init__()
        self.pc_range = [float(v) for v in point_cloud_range]
        self.voxel = float(voxel)
        # (Z, X, Y) cells of ~voxel metres spanning the range exactly (sample_volume maps the range to the volume)
        self.shape = tuple(max(1, round((self.pc_range[a + 3] - self.pc_range[a]) / self.voxel)) for a in (2, 0, 1))
        self.el_bin, self.az_bin = math.radians(elevation_bin_deg), math.radians(azimuth_bin_deg)
        self.el_lo = math.radians(elevation_range_deg[0])
        self.n_el = max(1, round(math.radians(elevation_range_deg[1] - elevation_range_deg[0]) / self.el_bin))
        self.n_az = max(1, round(2 * math.pi / self.az_bin))
        self._ray_cache = None  # (xyz (P, 3), origin (3,), bin (P,), distance (P,)) of the last call

    def forward(self, points, lidar_mask, origins, xyz):
        b = xyz.shape[0]
        out = xyz.new_zeros(b, NUM_CUES, *xyz.shape[1:-1])
        for i in range(b):
            if not bool(lidar_mask[i]) or points[i].shape[0] == 0:
                continue
            pts = points[i][:, :3].to(xyz.dtype)
            for c, cell in enumerate((1, 2)):  # 0.4 m and 0.8 m count grids
                hits = self.hit_volume(pts, cell)
                out[i, c] = sample_volume(hits, xyz[i:i + 1], self.pc_range, "zeros")[0, 0]
            keyframe = pts if points[i].shape[1] < 5 else pts[points[i][:, 4].abs() < 1e-3]
            image = self.range_image(keyframe, origins[i])
            d, no_return = self.ray_distance(image, origins[i], xyz[i], keep=not self.training)
            out[i, 2] = d.clamp(0, FREE_RANGE_M) / FREE_RANGE_M
            out[i, 3] = (-d).clamp(0, FREE_RANGE_M) / FREE_RANGE_M
            out[i, 4] = no_return.to(xyz.dtype)
            out[i, PRESENT_CUE] = 1.0
        return out

    def hit_volume(self, pts, cell=1):
        """log(1 + count) of ``pts`` (N, 3) per ``cell x voxel`` cell -> ``(1, 1, Z, X, Y)`` (``sample_volume``
        layout)."""
        z_n, x_n, y_n = (max(1, n // cell) for n in self.shape)
        lower = pts.new_tensor(self.pc_range[:3])
        cells = pts.new_tensor([x_n, y_n, z_n]) / (pts.new_tensor(self.pc_range[3:]) - lower)  # cells per metre
        idx = torch.floor((pts - lower) * cells).long()
        keep = (idx >= 0).all(1) & (idx[:, 0] < x_n) & (idx[:, 1] < y_n) & (idx[:, 2] < z_n)
        idx = idx[keep]
        flat = (idx[:, 2] * x_n + idx[:, 0]) * y_n + idx[:, 1]
        counts = torch.bincount(flat, minlength=z_n * x_n * y_n).to(pts.dtype)
        return torch.log1p(counts).reshape(1, 1, z_n, x_n, y_n)

    def _bins(self, rel):
        """Range-image bin (elevation row, azimuth column) of directions ``rel`` (N, 3) -> (row, col, valid)."""
        el = torch.atan2(rel[:, 2], rel[:, :2].norm(dim=1))
        az = torch.atan2(rel[:, 1], rel[:, 0])
        row = torch.floor((el - self.el_lo) / self.el_bin).long()
        col = torch.floor((az + math.pi) / self.az_bin).long() % self.n_az
        return row, col, (row >= 0) & (row < self.n_el)

    def range_image(self, pts, origin):
        """Nearest return per (elevation, azimuth) bin around ``origin`` -> ``(n_el, n_az)`` metres, inf = none;
        an empty bin takes the nearest return of the bins directly above and below it."""
        rel = pts - origin
        row, col, valid = self._bins(rel)
        image = torch.full((self.n_el * self.n_az,), math.inf, dtype=pts.dtype, device=pts.device)
        image.scatter_reduce_(0, (row * self.n_az + col)[valid], rel.norm(dim=1)[valid], reduce="amin")
        image = image.reshape(self.n_el, self.n_az)
        gap = -F.max_pool2d(-image[None, None], (3, 1), stride=1, padding=(1, 0))[0, 0]
        return torch.where(torch.isinf(image), gap, image)

    def ray_bins(self, xyz, origin, keep=False):
        """Per point ``xyz`` (P, 3): its flat range-image bin (-1 outside the elevation range) and ``|p - o|``
        (metres). ``keep``: reuse the last kept result when the points and origin are the same (compared by
        value), and keep this one."""
        cache = self._ray_cache if keep else None
        if (cache is not None and cache[0].shape == xyz.shape and cache[0].dtype == xyz.dtype
                and cache[0].device == xyz.device and torch.equal(cache[1], origin) and torch.equal(cache[0], xyz)):
            return cache[2], cache[3]
        rel = xyz - origin
        row, col, valid = self._bins(rel)
        flat = torch.where(valid, row * self.n_az + col, torch.full_like(row, -1))
        dist = rel.norm(dim=1)
        if keep:
            self._ray_cache = (xyz.detach().clone(), origin.detach().clone(), flat, dist)
        return flat, dist

    def ray_distance(self, image, origin, xyz, keep=False):
        """``d = r_return - |p - o|`` per point ``xyz`` (..., 3) and the no-return flag (d = 0 there); ``keep``
        as in :meth:`ray_bins`."""
        flat, dist = self.ray_bins(xyz.reshape(-1, 3), origin, keep)
        r_ret = torch.where(flat >= 0, image.reshape(-1)[flat.clamp(min=0)], torch.full_like(dist, math.inf))
        no_return = torch.isinf(r_ret)
        d = torch.where(no_return, torch.zeros_like(r_ret), r_ret - dist)
        return d.reshape(xyz.shape[:-1]), no_return.reshape(xyz.shape[:-1])
