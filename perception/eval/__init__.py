"""Evaluation identical to the official protocols (``perception eval``).

- :mod:`perception.eval.detection`: LiDAR-frame boxes -> official nuScenes submission JSON, scored by the
  devkit's ``DetectionEval`` (the referee; matching is never reimplemented here).
- :mod:`perception.eval.bev_iou`: BEVFusion BEV map segmentation IoU (best threshold per class).
- :mod:`perception.eval.occ_miou`: Occ3D-nuScenes mIoU (camera mask) + geometry IoU.
- :mod:`perception.eval.ray_iou`: SparseOcc RayIoU (numba ray marching).
- :mod:`perception.eval.openocc`: OpenOccupancy (nuScenes-Occupancy) geometry IoU + semantic mIoU.
- :mod:`perception.eval.results_io`: saved prediction formats and their validation.
- :mod:`perception.eval.runner`: score a split (saved predictions or a checkpoint);
  :mod:`perception.eval.dense`: the BEV map / occupancy accumulators of a split;
  :mod:`perception.eval.distributed`: shard + gather.
- :mod:`perception.eval.report`: terminal table and PNG plots.

The dense metrics reproduce their reference implementations number for number (each module names its reference
file and commit; ``tests/test_eval_reference.py`` checks them against transcriptions of the reference
arithmetic). Each metric dict carries a ``protocol`` entry that names the reference and labels which number is
the leaderboard's and which are extras.
"""
