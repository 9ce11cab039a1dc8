"""The Python side of the exported model: a test-time batch -> the graph's inputs (:mod:`perception.export.graph`).

Each piece is the PyTorch path's own code: ``LidarEncoder.voxelize`` (numba hard voxelization),
``CameraEncoder.lidar_depth`` and ``CameraEncoder.pool_plan`` (cached for a fixed rig),
``MultiTaskHead.dense_inputs`` (grid points, occupancy LiDAR cues). Batch size 1.
"""

import torch

from perception.models.timing import stage


def prepare_inputs(model, batch):
    """``{input name: tensor}`` for :class:`perception.export.graph.ExportGraph` from a batch of one sample."""
    if batch["lidar_mask"].shape[0] != 1:
        raise ValueError(f"the exported graph takes one sample, got a batch of {batch['lidar_mask'].shape[0]}")
    device = batch["lidar_mask"].device
    lidar_mask = batch["lidar_mask"].bool()
    x = {}
    if model.lidar_encoder is not None:
        lidar = model.lidar_encoder
        with stage("voxelization"):
            voxels, counts, coords = lidar.voxelize(batch["points"], lidar_mask)
        if voxels.shape[0] == 0:  # no LiDAR: one dummy pillar, zeroed by the neck's LiDAR mask
            voxels = voxels.new_zeros(1, lidar.max_points_per_pillar, lidar.in_channels)
            counts = torch.ones(1, dtype=torch.long, device=voxels.device)
            coords = torch.zeros(1, 4, dtype=torch.long, device=voxels.device)
            lidar_mask = torch.zeros_like(lidar_mask)
        x.update(voxels=voxels, num_points=counts, voxel_coords=coords, lidar_mask=lidar_mask)
    if model.camera_encoder is not None:
        cam = model.camera_encoder
        cam_mask = batch["cam_mask"].bool()
        with stage("view_transform"):
            # as M3Net.encode: the camera encoder always reads the batch's points with the batch's LiDAR mask
            depth_map = cam.lidar_depth(batch["points"], batch["lidar_mask"].bool(), batch["intrinsics"],
                                        batch["lidar2cam"], cam_mask)
            plan = cam.pool_plan(batch["intrinsics"], batch["lidar2cam"], cam_mask)
        x.update(images=batch["images"], cam_mask=cam_mask, depth_map=depth_map, pool_depth_index=plan.depth_index,
                 pool_context_index=plan.context_index, pool_cell_index=plan.cell_index)
    dense = model.head.dense_inputs(batch, device)
    x.update(dense)
    return x
