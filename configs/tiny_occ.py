# tiny, single task: 'occ' only.
_base_ = ["tiny.py"]
model = dict(tasks=("occ",), refiner=None, camera_map_weight=0.0,  # no boxes to refine, no map task
             camera_map_blend=0.0)
