# tiny, LiDAR only: no camera encoder (no images loaded).
_base_ = ["tiny.py"]
model = dict(camera=None, camera_map_weight=0.0, camera_map_blend=0.0,  # no camera branch to supervise or blend
             occ_prior_fill=None, occ_ground_from_map=None,  # without cameras a frame without LiDAR has no input
             head=dict(map=dict(aux_blend=0.0)))  # candidate O was chosen on the fusion models only
# No modality dropout: with one encoder, a dropped modality would leave nothing to read (config rule).
data = dict(cameras=(), modality_dropout=dict(lidar=0.0, all_cameras=0.0, some_cameras=0.0))
