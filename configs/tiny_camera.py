# tiny, cameras only: no LiDAR encoder (points are still loaded for depth supervision).
_base_ = ["tiny.py"]
model = dict(lidar=None, refiner=None)  # the box refiner reads LiDAR points
