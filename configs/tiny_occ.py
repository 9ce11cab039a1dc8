# tiny, single task: 'occ' only.
_base_ = ["tiny.py"]
model = dict(tasks=("occ",))
