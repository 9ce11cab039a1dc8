"""What the generator calls per world version: scene building, sensor boxes, LiDAR, cameras, visibility and
LiDAR point counts. :class:`WorldV1` wraps the original modules unchanged (byte-identical output);
:class:`WorldV2` the v2 ones. Frames as in the wrapped modules (boxes and poses GLOBAL, metres, seconds).
"""

import numpy as np

from perception.synth import camera, lidar
from perception.synth.raycast import pack_boxes
from perception.synth.world import normalize_world


class WorldV1:
    """The original world: :mod:`perception.synth.scene`, :mod:`~perception.synth.lidar`,
    :mod:`~perception.synth.camera`."""

    version = "v1"

    def build(self, rng, name, origin, duration):
        from perception.synth.scene_v1 import build_scene

        sc = build_scene(rng, name, origin, duration)
        sc.v1_colours = np.array([a.colour for a in sc.actors], dtype=np.float64)
        sc.v1_reflectivity = np.array([a.reflectivity for a in sc.actors], dtype=np.float64)
        return sc

    def labels(self, sc):
        """``(occ labels (M,), annotated (M,) bool)`` of the scene's actors."""
        return np.array([a.occ for a in sc.actors]), np.array([a.detection_name is not None for a in sc.actors])

    def sensor_boxes(self, sc, t):
        """Kernel boxes the sensors see at time ``t``."""
        return pack_boxes(sc.boxes_at(t))

    def scan(self, sc, packed, lidar2global, rng):
        return lidar.scan(sc, packed, sc.v1_reflectivity, lidar2global, rng)

    def render(self, sc, packed, cam2global, K, width, height, rng):
        return camera.render(sc, packed, sc.v1_colours, cam2global, K, width, height)

    def visible(self, sc, boxes_key, t_key, near, cams):
        return camera.visible_fraction(pack_boxes(boxes_key), near, cams)

    def counts(self, sc, points, hit, boxes_key, lidar2global):
        """``num_lidar_pts`` per actor: the keyframe points whose ray hit it."""
        return np.bincount(hit[hit >= 0], minlength=len(sc.actors))


class WorldV2(WorldV1):
    """World v2 (:mod:`perception.synth.scene_v2`, :mod:`perception.synth.sensors_v2`) with ``params``."""

    version = "v2"

    def __init__(self, params):
        self.params = params

    def build(self, rng, name, origin, duration):
        from perception.synth.populate import build_scene_v2

        return build_scene_v2(rng, name, origin, duration, self.params)

    def labels(self, sc):
        return sc.occ_labels, sc.annotated

    def sensor_boxes(self, sc, t):
        """The physical boxes: annotated ones shrunk by ``box_margin`` (noisy returns stay inside the GT)."""
        return pack_boxes(sc.boxes_at(t, self.params.box_margin))

    def scan(self, sc, packed, lidar2global, rng):
        from perception.synth.sensors_v2 import scan

        return scan(sc, packed, lidar2global, rng)

    def render(self, sc, packed, cam2global, K, width, height, rng):
        from perception.synth.sensors_v2 import render

        return render(sc, packed, cam2global, K, width, height, rng)

    def visible(self, sc, boxes_key, t_key, near, cams):
        from perception.synth.sensors_v2 import visible_fraction

        return visible_fraction(sc, self.sensor_boxes(sc, t_key), near, cams)

    def counts(self, sc, points, hit, boxes_key, lidar2global):
        """``num_lidar_pts`` per actor: keyframe points inside its annotated box (nuScenes' definition)."""
        from perception.synth.sensors_v2 import count_points

        return count_points(points, boxes_key, lidar2global)


def make_backend(world):
    """The backend of ``world`` (``"v1"``, ``"v2"``, a :class:`WorldParams` or ``None`` = v1)."""
    version, params = normalize_world(world)
    return WorldV1() if version == "v1" else WorldV2(params)
