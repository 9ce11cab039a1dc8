"""LiDAR branch: voxelization, pillar feature net + BEV scatter, optional spconv sparse encoder."""
