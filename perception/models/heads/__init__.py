"""The multi-task head (:class:`multitask.MultiTaskHead`: input projections, shared decoder, wiring) and its task
modules, one per task with that task's queries, head, targets, losses and decoding: :mod:`det_task`,
:mod:`map_task`, :mod:`occ_task` (voxel sampling / class-prior correction in :mod:`occ_sampling`). The network
pieces they use: :mod:`det_head`, :mod:`map_head`, :mod:`occ_head`, :mod:`occ_lidar_cues`."""
