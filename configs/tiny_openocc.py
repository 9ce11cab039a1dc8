# tiny, trained and evaluated on OpenOccupancy (nuScenes-Occupancy) labels instead of Occ3D: the occupancy head
# predicts the 512 x 512 x 40 OPENOCC_GRID (0.2 m, LiDAR frame; 17 classes, 0 = empty, label 255 ignored) and
# the data section reads <openocc_root>/scene_<scene token>/occupancy/<LIDAR_TOP token>.npy per keyframe.
_base_ = ["tiny.py"]
model = dict(head=dict(occ=dict(grid="openocc", frame="lidar", num_classes=17, free_index=0)),
             occ_prior_fill=None, occ_ground_from_map=None)  # the no-LiDAR fill and relabel are Occ3D's
data = dict(
    occ_format="openocc",
    # MUST be set to the nuScenes-Occupancy label folder (it holds the scene_<token>/ folders), e.g.
    #   perception train configs/tiny_openocc.py --dataroot D --cfg-options data.openocc_root=/data/nuScenes-Occupancy
    # (training refuses to start while it is None); `perception eval` defaults --openocc-root to it.
    openocc_root=None,
)
