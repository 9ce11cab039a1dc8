# tiny, single task: 'det' only.
_base_ = ["tiny.py"]
model = dict(tasks=("det",))
