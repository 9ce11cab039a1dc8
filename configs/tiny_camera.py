# tiny, cameras only: no LiDAR encoder (points are still loaded for depth supervision).
_base_ = ["tiny.py"]
model = dict(lidar=None, refiner=None, head=dict(occ_lidar_cues=False))  # the refiner and the occupancy cues read LiDAR points
