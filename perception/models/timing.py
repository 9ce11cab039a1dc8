"""Optional per-stage timing of the model (``perception bench``): no cost when off.

The model marks its stages with ``with stage("name"):``. While no :class:`StageTimer` is active, ``stage``
returns one shared no-op context manager (a global lookup and a call: well under a microsecond per stage,
~15 stages per frame). Inside ``with StageTimer(device) as timer:`` each stage's wall time is recorded:

- CPU: ``time.perf_counter`` at entry and exit;
- CUDA: a pair of CUDA events recorded on the current stream; :meth:`StageTimer.collect` synchronizes once
  and reads the elapsed times (no host sync inside the forward).

Stages may nest (``view_transform`` holds ``bev_pool``); a stage entered several times in one frame (a
camera loop, the refiner's passes) adds up. Names in use: ``voxelization``, ``lidar_backbone``,
``image_backbone`` (backbone + FPN), ``view_transform`` (LiDAR depth map, depth net, BEV pooling) with
``bev_pool``, ``fusion``, ``queries``, ``decoder``, ``det_head``, ``map_head``, ``occ_head`` with
``occ_cues``, ``decode``, ``refiner``; ``perception.runtime.Predictor`` adds ``preprocess`` and
``postprocess`` from its own ``timings_ms``.
"""

import contextlib
import time
from collections import defaultdict

import torch

_ACTIVE = None  # the StageTimer in force, or None
_NULL = contextlib.nullcontext()


def stage(name):
    """Context manager timing stage ``name`` when a :class:`StageTimer` is active, else a shared no-op."""
    timer = _ACTIVE
    if timer is None:
        return _NULL
    return timer.region(name)


def active():
    """The active :class:`StageTimer`, or None."""
    return _ACTIVE


class _Region:
    __slots__ = ("timer", "name", "start")

    def __init__(self, timer, name):
        self.timer, self.name = timer, name

    def __enter__(self):
        self.start = self.timer._mark()
        return self

    def __exit__(self, *exc):
        self.timer._pending.append((self.name, self.start, self.timer._mark()))
        return False


class StageTimer:
    """Collects stage times for one or more frames.

    ``with StageTimer(device) as t: model.predict(batch)`` then ``t.collect()`` -> ``{stage: ms}`` of that
    frame (summed over repeated entries); :meth:`collect` also clears the pending marks so the same timer
    can time the next frame. Only one timer is active at a time (nesting timers is an error).
    """

    def __init__(self, device="cpu"):
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        self._pending = []

    def __enter__(self):
        global _ACTIVE
        if _ACTIVE is not None:
            raise RuntimeError("StageTimer: another timer is already active")
        _ACTIVE = self
        return self

    def __exit__(self, *exc):
        global _ACTIVE
        _ACTIVE = None
        return False

    def region(self, name):
        return _Region(self, name)

    def _mark(self):
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        return time.perf_counter()

    def collect(self):
        """``{stage: milliseconds}`` of the marks since the last call (CUDA: synchronizes once, here)."""
        if self.cuda and self._pending:
            torch.cuda.synchronize(self.device)
        out = defaultdict(float)
        for name, start, end in self._pending:
            out[name] += start.elapsed_time(end) if self.cuda else (end - start) * 1e3
        self._pending = []
        return dict(out)
