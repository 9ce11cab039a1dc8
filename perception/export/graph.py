"""The exportable network of :class:`perception.models.m3net.M3Net`: everything between the Python-side
inputs (voxels, LiDAR depth map, pooling ranks, grid points, map and occupancy cues) and the decoding.

:class:`ExportGraph` runs the SAME modules as ``M3Net.predict`` (the model's own ``encode_pillars``,
backbone, FPN, depth net, :func:`bev_pool_ranked`, neck and ``MultiTaskHead.forward(..., dense=...)``) with
two differences that do not change the outputs: every camera goes through the image network and a missing
one is zeroed afterwards (the PyTorch path skips it; both give it zero depth mass and zero context), and a
frame without LiDAR is fed one dummy pillar that the neck's LiDAR mask zeroes (the PyTorch path builds an
empty canvas). Batch size 1.
"""

from types import SimpleNamespace

import torch
from torch import nn

from perception.models.camera.lss import bev_pool_ranked

# Graph inputs in order (those of a disabled modality / task are left out), and the outputs.
LIDAR_INPUTS = ("voxels", "num_points", "voxel_coords", "lidar_mask")
CAMERA_INPUTS = ("images", "cam_mask", "depth_map", "pool_depth_index", "pool_context_index", "pool_cell_index")
DET_OUTPUTS = ("heatmap", "cls_logits", "code", "cells", "labels", "heat_score")


def input_names(model):
    names = []
    if model.lidar_encoder is not None:
        names += LIDAR_INPUTS
    if model.camera_encoder is not None:
        names += CAMERA_INPUTS
    if "map" in model.tasks:
        names.append("map_points")
        if model.head.map.refiner is not None:
            names.append("map_cues")
    if "occ" in model.tasks:
        names.append("occ_points")
        if model.head.occ.cues is not None:
            names.append("occ_cues")
    return names


def output_names(model):
    names = []
    if "det" in model.tasks:
        names += DET_OUTPUTS
        if model.head.det.queries.offset_head is not None:
            names.append("anchor_offset")
    if "map" in model.tasks:
        names.append("map_logits")
        if model.camera_map_blend:  # the camera branch's own map head, blended in on frames without LiDAR
            names.append("camera_map_logits")
    if "occ" in model.tasks:
        names.append("occ_logits")
    return names


def encode_all_cameras(cam, images, cam_mask, depth_map, plan):
    """:class:`CameraEncoder` from the image network to the pooled BEV, every camera through the network
    (missing ones zeroed after it), pooling with the given ranks (``plan``)."""
    b, n = images.shape[:2]
    h, w = cam.feature_hw
    num_bins = cam.depth_bins.num_bins
    features = cam.fpn(cam.backbone(images.reshape(-1, 3, *cam.image_size)))
    if cam.use_lidar_depth:
        sparse = depth_map.reshape(-1, 1, h, w).to(features.dtype)
        features = torch.cat([features, cam.encode_depth(sparse)], 1)
    out = cam.depth_net(features)
    present = cam_mask.reshape(-1, 1, 1, 1).to(out.dtype)
    depth_logits = (out[:, :num_bins] * present).view(b, n, num_bins, h, w)
    context = (out[:, num_bins:] * present).view(b, n, -1, h, w)
    depth_probs = depth_logits.softmax(dim=2) * cam_mask[:, :, None, None, None].to(out.dtype)
    return cam.downsample(bev_pool_ranked(depth_probs, context, plan))


class ExportGraph(nn.Module):
    """``forward(*inputs in input_names(model) order) -> outputs in output_names(model) order``."""

    def __init__(self, model):
        super().__init__()
        if model.lidar_encoder is not None and model.lidar_encoder.backbone != "pillar":
            raise ValueError("ONNX export: the sparse (spconv) LiDAR backbone cannot be exported; use "
                             "model.lidar.backbone='pillar'")
        self.model = model
        self.inputs = input_names(model)
        self.outputs = output_names(model)
        if model.camera_encoder is not None:
            cam = model.camera_encoder
            self.pool_cells = cam.pool_shape[0] * cam.pool_shape[1]
            self.pool_grid = tuple(cam.pool_shape)

    def forward(self, *args):
        x = dict(zip(self.inputs, args, strict=True))
        m = self.model
        lidar_bev = camera_bev = None
        lidar_mask = x.get("lidar_mask")
        if m.lidar_encoder is not None:
            lidar_bev = m.lidar_encoder.encode_pillars(x["voxels"], x["num_points"], x["voxel_coords"], 1)
        camera_mask = None
        if m.camera_encoder is not None:
            plan = SimpleNamespace(depth_index=x["pool_depth_index"], context_index=x["pool_context_index"],
                                   cell_index=x["pool_cell_index"], cells=self.pool_cells, grid_xy=self.pool_grid)
            camera_bev = encode_all_cameras(m.camera_encoder, x["images"], x["cam_mask"], x["depth_map"], plan)
            camera_mask = x["cam_mask"].any(dim=1)
        like_mask = lidar_mask if lidar_mask is not None else camera_mask
        if camera_mask is None:
            camera_mask = torch.zeros_like(like_mask)
        if lidar_mask is None:
            lidar_mask = torch.zeros_like(like_mask)
        task_bevs = m.neck(lidar_bev, camera_bev, lidar_mask, camera_mask)
        dense = {k: x[k] for k in ("map_points", "map_cues", "occ_points", "occ_cues") if k in x}
        out = m.head(task_bevs, {}, dense=dense)
        result = []
        if "det" in m.tasks:
            result += [out["det"][k] for k in DET_OUTPUTS]
            if "anchor_offset" in self.outputs:
                result.append(out["det"]["anchor_offset"])
        if "map" in m.tasks:
            result.append(out["map"]["logits"])
            if "camera_map_logits" in self.outputs:
                result.append(m.camera_map.logits_at(camera_bev, x["map_points"]))  # (1, K, 200, 200)
        if "occ" in m.tasks:
            result.append(out["occ"]["logits"])
        return tuple(result)


class RefinerGraph(nn.Module):
    """The box refiner's network: ``(local (M, P, C), mask (M, P) bool, proposals (M, 9), labels (M,)) ->
    (residuals (M, 7), quality logits (M,))``."""

    def __init__(self, refiner):
        super().__init__()
        self.refiner = refiner

    def forward(self, local, mask, proposals, labels):
        return self.refiner(local, mask, proposals, labels)
