"""BEV map memory: a running mean of the map probabilities over the frames so far, moved with the ego.

The map classes (drivable area, crossings, walkways, stop lines, car parks, dividers) do not move, so every
earlier frame's map says something about where they are now; each frame also sees the road from a new place.
:class:`MapMemory` keeps, on ``BEV_MAP_GRID`` in the LiDAR frame of the newest frame, the weighted mean of the
map probabilities of all frames so far and the weight behind each cell. Each new frame:

1. moves the memory into its own LiDAR frame (:func:`warp_bev`, through ``lidar2world`` of both frames;
   cells that were outside the old grid get no memory),
2. lets the old evidence fade by ``exp(-dt / time_constant_s)`` (dt: seconds between the two frames), so a
   pose drift or a changed road is forgotten within seconds and a parked vehicle does not sum forever,
3. adds the frame's own probabilities with weight 1: ``fused = (w * decay * memory + probs) / (w * decay + 1)``.

It starts over (and says why) when the pose goes missing, the clock goes backwards, or the frames are more than
``max_gap_s`` apart. Frames: ``lidar2world`` is the LiDAR frame at the LiDAR stamp -> a world frame that does
not move (nuScenes global; a robot's ``odom``): metres. Stamps in microseconds. Only the map is kept: the
occupancy holds moving objects.
"""

import functools
import math

import numpy as np
import torch
import torch.nn.functional as F

from perception.constants import BEV_MAP_GRID


@functools.lru_cache(maxsize=4)
def grid_centres(grid=BEV_MAP_GRID):
    """``(NX, NY, 4)`` homogeneous centres ``[x, y, 0, 1]`` of the cells of ``grid`` (metres, its frame);
    computed once per grid (every frame warps the same centres), read-only."""
    x, y = np.meshgrid(grid.centers(0), grid.centers(1), indexing="ij")
    out = np.stack([x, y, np.zeros_like(x), np.ones_like(x)], axis=-1)
    out.flags.writeable = False
    return out


def warp_bev(values, dst2src, grid=BEV_MAP_GRID):
    """Resample ``values (C, NX, NY)`` (on ``grid`` in a source frame) at the cell centres of ``grid`` in a
    destination frame. ``dst2src``: 4x4 destination frame -> source frame (metres; only x, y of the result are
    used: the map is flat). Bilinear; returns ``(warped (C, NX, NY) float32, inside (NX, NY) bool)``, with
    ``inside`` False (and the values 0) where the destination cell centre falls outside the source grid."""
    values = np.asarray(values, np.float32)
    src = grid_centres(grid) @ np.asarray(dst2src, np.float64).T  # (NX, NY, 4): destination centres, source frame
    lo, hi = np.asarray(grid.lower[:2]), np.asarray(grid.upper[:2])
    norm = (src[..., :2] - lo) / (hi - lo) * 2.0 - 1.0  # (NX, NY, 2) in [-1, 1] inside the grid
    inside = (np.abs(norm) <= 1.0).all(axis=-1)
    # grid_sample reads (N, C, H, W) with H = x and W = y, and its grid's last dim is (W index, H index)
    # (float64: a cell a whole number of cells away comes back exactly)
    sample_at = torch.from_numpy(np.ascontiguousarray(norm[..., ::-1]))[None]  # (1, NX, NY, 2)
    warped = F.grid_sample(torch.from_numpy(values.astype(np.float64))[None], sample_at, mode="bilinear",
                           padding_mode="zeros", align_corners=False)[0].numpy()  # (C, NX, NY)
    return (warped * inside).astype(np.float32), inside


class MapMemory:
    """See the module docstring. ``time_constant_s`` > 0 (seconds); ``max_gap_s``: frames further apart start
    over. :meth:`update` returns the fused probabilities and a note when the memory started over for a reason
    a caller should hear about (no pose, clock jump), else None."""

    def __init__(self, time_constant_s, max_gap_s=2.0, grid=BEV_MAP_GRID):
        if not time_constant_s > 0:
            raise ValueError(f"model.map_memory_s must be > 0 to keep a map memory, got {time_constant_s}")
        self.time_constant_s, self.max_gap_s, self.grid = float(time_constant_s), float(max_gap_s), grid
        self.reset()

    def reset(self):
        """Forget everything (a new scene or log)."""
        self.probs = None  # (C, NX, NY) float32 running mean, LiDAR frame of the newest frame
        self.weight = None  # (NX, NY) float32 evidence behind each cell (frames, faded)
        self.lidar2world = None
        self.stamp_us = None

    def update(self, probs, lidar2world, stamp_us):
        """``probs (C, NX, NY)`` in [0, 1] of this frame; ``lidar2world`` 4x4 or None; ``stamp_us`` int."""
        probs = np.asarray(probs, np.float32)
        note = None
        if lidar2world is None:  # said only when something was forgotten (a node without odometry stays quiet)
            had = self.probs is not None
            self.reset()
            return probs, "no ego pose: BEV map from this frame alone (map memory reset)" if had else None
        lidar2world = np.asarray(lidar2world, np.float64)
        if self.probs is not None:
            dt = (int(stamp_us) - self.stamp_us) * 1e-6
            if dt < 0 or dt > self.max_gap_s:
                note = f"map memory reset: {dt:.2f} s since the previous frame (limit 0 to {self.max_gap_s:g} s)"
                self.reset()
        if self.probs is None:
            fused, weight = probs, np.ones(probs.shape[1:], np.float32)
        else:
            dst2src = np.linalg.inv(self.lidar2world) @ lidar2world  # this LiDAR frame -> the memory's
            moved = np.concatenate([self.probs * self.weight, self.weight[None]])  # weighted sum and weight together
            old, _ = warp_bev(moved, dst2src, self.grid)
            decay = math.exp(-dt / self.time_constant_s)
            old_sum, old_weight = old[:-1] * decay, old[-1] * decay  # (C, NX, NY), (NX, NY)
            weight = old_weight + 1.0
            fused = np.clip((old_sum + probs) / weight, 0.0, 1.0).astype(np.float32)
        self.probs, self.weight, self.lidar2world, self.stamp_us = fused, weight, lidar2world, int(stamp_us)
        return fused, note
