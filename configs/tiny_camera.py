# tiny, cameras only: no LiDAR encoder and no LiDAR depth as an input of the camera branch
# (use_lidar_depth=False), so no point shapes a prediction. Points are still loaded in training: their
# depth supervises the camera depth head (a training label, as in BEVDepth).
_base_ = ["tiny.py"]
# The refiner and the occupancy cues read LiDAR points.
model = dict(lidar=None, refiner=None, camera=dict(use_lidar_depth=False), head=dict(occ=dict(lidar_cues=False)))
# No modality dropout: with one encoder, a dropped modality would leave nothing to read (config rule).
data = dict(modality_dropout=dict(lidar=0.0, all_cameras=0.0, some_cameras=0.0))
