# tiny, single task: 'det' only.
_base_ = ["tiny.py"]
model = dict(tasks=("det",), camera_map_weight=0.0, camera_map_blend=0.0)  # no map task
