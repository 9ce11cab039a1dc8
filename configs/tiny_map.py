# tiny, single task: 'map' only.
_base_ = ["tiny.py"]
model = dict(tasks=("map",), refiner=None)  # no boxes to refine
