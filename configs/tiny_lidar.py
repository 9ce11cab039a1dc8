# tiny, LiDAR only: no camera encoder (no images loaded).
_base_ = ["tiny.py"]
model = dict(camera=None)
data = dict(cameras=())
