# tiny, single task: 'occ' only.
_base_ = ["tiny.py"]
model = dict(tasks=("occ",), refiner=None)  # no boxes to refine
