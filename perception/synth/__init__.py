"""Synthetic nuScenes-format dataset generator (``perception synth``).

Modules: ``scene`` (the world: a curved road, actors with tracks, static background), ``raycast`` (numba
ray casting kernels), ``lidar`` (32-beam spinning LiDAR), ``camera`` (six nuScenes-like cameras),
``occupancy`` (Occ3D labels), ``maps`` (map expansion JSON + mask PNG), ``tables`` (v1.0 JSON tables),
``generate`` (orchestration: :func:`perception.synth.generate.generate_dataset`).
"""
