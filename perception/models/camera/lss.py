"""Lift-splat geometry: depth bins, image frustum, frustum -> LiDAR frame, BEV sum pooling, and the
LiDAR depth map used both as depth-net input and as depth supervision.

Pixel convention: image pixel ``(u, v)`` (column, row) has its centre at integer coordinates (the
convention of the nuScenes intrinsics). Feature cell ``(row i, col j)`` at ``stride`` s covers image pixels
``[j*s, (j+1)*s)`` so its centre is ``u = j*s + (s-1)/2``; conversely a pixel ``u`` falls in column
``floor((u + 0.5) / s)``. Depth ``d`` is the camera-frame ``z`` (metres). Camera frame: x right, y down,
z forward. BEV grid: x-first ``(X, Y)`` cells of ``cell`` metres over ``point_cloud_range`` (LiDAR frame).
"""

import torch


class DepthBins:
    """Uniform depth bins ``[start + k*step, start + (k+1)*step)`` for ``k < num_bins`` (metres)."""

    def __init__(self, start, stop, step):
        if not (0 < start < stop) or step <= 0:
            raise ValueError(f"depth_bins must be (start > 0, stop > start, step > 0) in metres, "
                             f"got {(start, stop, step)}")
        self.start, self.stop, self.step = float(start), float(stop), float(step)
        self.num_bins = int(round((stop - start) / step))

    def centres(self, device=None):
        """``(num_bins,)`` bin-centre depths in metres (the depth a lifted feature is placed at)."""
        return self.start + (torch.arange(self.num_bins, device=device, dtype=torch.float32) + 0.5) * self.step

    def index(self, depth):
        """Bin index (int64) of each depth; ``-1`` for depths outside ``[start, start + num_bins*step)`` or 0."""
        k = torch.floor((depth - self.start) / self.step).long()
        return torch.where((k >= 0) & (k < self.num_bins) & (depth > 0), k, torch.full_like(k, -1))


def make_frustum(feature_hw, stride, depth_centres):
    """``(D, h, w, 3)`` frustum points ``(u, v, d)``: feature-cell centres in image pixels and bin depths."""
    h, w = feature_hw
    u = torch.arange(w, dtype=torch.float32) * stride + (stride - 1) / 2.0
    v = torch.arange(h, dtype=torch.float32) * stride + (stride - 1) / 2.0
    d = depth_centres.float().cpu()
    dd, vv, uu = torch.meshgrid(d, v, u, indexing="ij")
    return torch.stack([uu, vv, dd], dim=-1)


def frustum_to_lidar(frustum, intrinsics, lidar2cam):
    """Frustum ``(D, h, w, 3)`` -> points ``(B, N, D, h, w, 3)`` in the (augmented) LiDAR frame (metres).

    ``intrinsics (B, N, 3, 3)`` pixel intrinsics of the augmented image (``P @ K``); ``lidar2cam (B, N, 4, 4)``
    augmented LiDAR -> camera. Computed in float64 so that the cell assignment is exact to ~1e-9 m.
    """
    uvd = frustum.to(intrinsics.device, torch.float64)
    cam_rays = torch.cat([uvd[..., :2] * uvd[..., 2:], uvd[..., 2:]], dim=-1)  # (u d, v d, d)
    inv_k = torch.linalg.inv(intrinsics.double())  # (B, N, 3, 3)
    cam2lidar = torch.linalg.inv(lidar2cam.double())
    cam = torch.einsum("bnij,dhwj->bndhwi", inv_k, cam_rays)
    lidar = torch.einsum("bnij,bndhwj->bndhwi", cam2lidar[..., :3, :3], cam) + cam2lidar[:, :, None, None, None, :3, 3]
    return lidar.float()


def bev_cell_index(xyz, point_cloud_range, cell, grid_xy):
    """Flat BEV index ``ix * Y + iy`` of LiDAR-frame points ``(..., 3)`` and a validity mask (inside the x/y
    grid and inside ``[z0, z1)``)."""
    nx, ny = grid_xy
    ix = torch.floor((xyz[..., 0] - point_cloud_range[0]) / cell).long()
    iy = torch.floor((xyz[..., 1] - point_cloud_range[1]) / cell).long()
    z = xyz[..., 2]
    valid = (ix >= 0) & (ix < nx) & (iy >= 0) & (iy < ny) & (z >= point_cloud_range[2]) & (z < point_cloud_range[5])
    return ix * ny + iy, valid


def bev_pool(depth_probs, context, geometry, cam_mask, point_cloud_range, cell, grid_xy):
    """Sum-pool lifted features onto the BEV grid.

    ``depth_probs (B, N, D, h, w)``, ``context (B, N, C, h, w)``, ``geometry (B, N, D, h, w, 3)`` LiDAR-frame
    positions, ``cam_mask (B, N)`` bool (False cameras contribute nothing). Each frustum point carries
    ``depth_probs * context``; points outside the grid are dropped. Returns ``(B, C, X, Y)`` x-first.
    Cameras are processed one at a time to bound the memory of the ``(B, D, h, w, C)`` outer product.
    """
    nx, ny = grid_xy
    batch, num_cams = depth_probs.shape[:2]
    channels = context.shape[2]
    cells = batch * nx * ny
    pooled = context.new_zeros(cells + 1, channels)  # last row collects dropped points
    batch_offset = (torch.arange(batch, device=context.device) * nx * ny)[:, None, None, None]
    for n in range(num_cams):
        index, valid = bev_cell_index(geometry[:, n], point_cloud_range, cell, grid_xy)  # (B, D, h, w)
        valid = valid & cam_mask[:, n, None, None, None]
        index = torch.where(valid, index + batch_offset, torch.full_like(index, cells))
        lifted = depth_probs[:, n, :, :, :, None] * context[:, n].permute(0, 2, 3, 1)[:, None]  # (B, D, h, w, C)
        pooled = pooled.index_add(0, index.reshape(-1), lifted.reshape(-1, channels))
    return pooled[:cells].view(batch, nx, ny, channels).permute(0, 3, 1, 2).contiguous()


class BevPoolPlan:
    """Precomputed ranks of one rig's frustum points for :func:`bev_pool_ranked` (BEVPoolv2-style).

    Only the frustum points that land on the grid (inside ``[z0, z1)``, of a present camera) are kept, in the
    reference's summation order (camera-major, then ``(B, D, h, w)``): ``depth_index`` into the flat
    ``depth_probs (B, N, D, h, w)``, ``context_index`` into the flat channels-last context ``(B, N, h, w)``
    and ``cell_index`` into the flat ``(B, X, Y)`` grid, all int64 ``(P,)``. ``order``/``starts``/``ends``:
    the points sorted by cell (stable) and each occupied cell's run of them (the numba kernel's input).
    A plan depends only on the calibration and the camera mask: for a fixed rig it is computed once.
    """

    def __init__(self, geometry, cam_mask, point_cloud_range, cell, grid_xy):
        nx, ny = grid_xy
        batch, num_cams, depth, h, w = geometry.shape[:5]
        device = geometry.device
        index, valid = bev_cell_index(geometry, point_cloud_range, cell, grid_xy)  # (B, N, D, h, w)
        valid = valid & cam_mask.bool()[:, :, None, None, None]
        b = torch.arange(batch, device=device)[:, None, None, None, None]
        n = torch.arange(num_cams, device=device)[None, :, None, None, None]
        pix = torch.arange(h * w, device=device).view(1, 1, 1, h, w)
        d = torch.arange(depth, device=device)[None, None, :, None, None]
        depth_index = ((b * num_cams + n) * depth + d) * (h * w) + pix
        context_index = ((b * num_cams + n) * (h * w) + pix).expand_as(depth_index)
        cell_index = index + b * (nx * ny)
        camera_major = [t.transpose(0, 1)[valid.transpose(0, 1)] for t in (depth_index, context_index, cell_index)]
        self.depth_index, self.context_index, self.cell_index = camera_major
        self.batch, self.grid_xy = batch, (nx, ny)
        self.cells = batch * nx * ny
        # Runs of equal cells after a stable sort (the reference's order inside each run is kept).
        self.order = torch.sort(self.cell_index, stable=True).indices
        sorted_cells = self.cell_index[self.order]
        change = torch.ones_like(sorted_cells, dtype=torch.bool)
        change[1:] = sorted_cells[1:] != sorted_cells[:-1]
        self.starts = change.nonzero().squeeze(1)
        self.ends = torch.cat([self.starts[1:], self.starts.new_tensor([sorted_cells.numel()])])
        self.run_cells = sorted_cells[self.starts]

    def to(self, device):
        for name in ("depth_index", "context_index", "cell_index", "order", "starts", "ends", "run_cells"):
            setattr(self, name, getattr(self, name).to(device))
        return self


def bev_pool_ranked(depth_probs, context, plan):
    """:func:`bev_pool` with a precomputed :class:`BevPoolPlan`: one gather-multiply-``scatter_add`` over the
    points that land on the grid, no camera loop, no per-frame cell arithmetic. Same sums in the same order
    as :func:`bev_pool` (equal up to float rounding; ``tests/test_models_camera.py``)."""
    batch, num_cams, channels = context.shape[:3]
    nx, ny = plan.grid_xy
    ctx = context.permute(0, 1, 3, 4, 2).reshape(-1, channels)  # (B * N * h * w, C)
    lifted = depth_probs.reshape(-1)[plan.depth_index, None] * ctx[plan.context_index]
    # scatter_add (not index_add): ONNX exports it as ScatterElements(reduction='add'), exact with repeated cells
    index = plan.cell_index[:, None].expand(-1, channels)
    pooled = context.new_zeros(plan.cells, channels).scatter_add_(0, index, lifted)
    return pooled.view(batch, nx, ny, channels).permute(0, 3, 1, 2).contiguous()


def lidar_depth_map(points, lidar_mask, lidar2img, cam_mask, feature_hw, stride, min_depth=1e-3):
    """Sparse LiDAR depth at feature resolution: ``(B, N, h, w)`` float32, the nearest camera-frame depth
    (metres) of the points projecting into each feature cell, 0 where none.

    ``points``: list of B ``(P_i, >=3)`` LiDAR-frame points; ``lidar2img (B, N, 4, 4)`` (augmented LiDAR ->
    augmented pixels, ``[[P K, 0], [0, 1]] @ lidar2cam``); masked samples/cameras give all-zero maps.
    """
    h, w = feature_hw
    batch, num_cams = lidar2img.shape[:2]
    flat = torch.full((batch * num_cams * h * w,), float("inf"), device=lidar2img.device)
    for b, pts in enumerate(points):
        if not bool(lidar_mask[b]) or pts.shape[0] == 0:
            continue
        xyz1 = torch.cat([pts[:, :3], torch.ones_like(pts[:, :1])], 1).double()
        proj = torch.einsum("nij,pj->npi", lidar2img[b].double(), xyz1)  # (N, P, 4)
        depth = proj[..., 2]
        safe = depth.clamp(min=min_depth)
        col = torch.floor((proj[..., 0] / safe + 0.5) / stride).long()
        row = torch.floor((proj[..., 1] / safe + 0.5) / stride).long()
        valid = (depth > min_depth) & (col >= 0) & (col < w) & (row >= 0) & (row < h) & cam_mask[b][:, None]
        cam = torch.arange(num_cams, device=flat.device)[:, None].expand_as(col)
        index = ((b * num_cams + cam) * h + row) * w + col
        flat = flat.scatter_reduce(0, index[valid], depth[valid].float(), reduce="amin")
    flat = torch.where(torch.isinf(flat), torch.zeros_like(flat), flat)
    return flat.view(batch, num_cams, h, w)
