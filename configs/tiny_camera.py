# tiny, cameras only: no LiDAR encoder (points are still loaded for depth supervision).
_base_ = ["tiny.py"]
# The refiner and the occupancy cues read LiDAR points.
model = dict(lidar=None, refiner=None, head=dict(occ=dict(lidar_cues=False)))
