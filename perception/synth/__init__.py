"""Synthetic nuScenes-format dataset generator (``perception synth``).

Two worlds (``world`` argument of :func:`perception.synth.generate.generate_dataset`; knobs and CLI arguments in
``world``): v1, the original (``scene`` + ``scene_v1``: one arc-shaped street, flat ground, one look per
class; ``specs``: its constants), and v2 (``scene_v2``: actors and tracks on ``layout`` streets with junctions,
``ground`` terrain and rasters, ``materials``, ``placement`` / ``zones`` / ``prune`` for where things stand,
``sensors_v2`` with the ``kernels`` / ``raycast_v2`` numba kernels). Shared: ``raycast`` (numba ray casting
kernels), ``lidar`` (32-beam spinning LiDAR), ``camera`` (six nuScenes-like cameras), ``occupancy`` (Occ3D
labels), ``maps`` (map expansion JSON + mask PNG), ``tables`` (v1.0 JSON tables), ``backends`` (what the
generator calls per world), ``generate`` (orchestration: :func:`perception.synth.generate.generate_dataset`).
"""
