"""m3_perception: camera + LiDAR multi-task perception (3D boxes, BEV map, 3D occupancy).

The library is organised one folder per stage:

- ``perception.data``      nuScenes / mmdet3d info files -> :class:`perception.data.Sample`
- ``perception.synth``     a synthetic nuScenes-format dataroot generator
- ``perception.models``    the M3Net-style fusion model (plain ``nn.Module``s)
- ``perception.training``  single-process and ``torchrun`` (DDP) training
- ``perception.eval``      official-protocol metrics (devkit detection, BEV IoU, Occ3D mIoU, RayIoU)
- ``perception.runtime``   the one ``Predictor`` used by eval, ROS 2 nodes and log replay
- ``perception.viz``       images a person looks at to find frame bugs
- ``perception.cli``       the ``perception`` command
"""

__version__ = "0.1.0"
