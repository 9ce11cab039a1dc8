"""World v2 scene: layout, terrain, ground rasters, materials, lighting and actors with tracks.

Frames and units: GLOBAL frame (metres, radians counter-clockwise from +x, z up; the ground is the terrain of
:mod:`perception.synth.ground`, not a plane); times in seconds since the scene's first sensor timestamp.
Actors either follow a street (``street >= 0``: street coordinates ``s(t) = s0 + speed * t`` (signed m/s along
+s), fixed offset ``d``, yaw = street heading + ``yaw_off``) or move freely (``street = -1``: global
``(x0, y0) + (vx, vy) t``, fixed ``yaw``). Every box stands on the terrain under its centre (``z0`` lifts it).
The ego drives along the main street in forward lane ``layout.ego_lane`` with a level (yaw-only) pose whose
origin is on the road surface.
"""

from dataclasses import dataclass

import numpy as np

from perception.synth.ground import CODE_TO_OCC, height
from perception.synth.materials import ground_table, object_material
from perception.synth.specs import CLASS_SPECS


@dataclass
class Actor2:
    """One box with a track (see module doc); ``material`` / ``pattern`` from :mod:`perception.synth.materials`;
    ``detection_name`` is ``None`` for unannotated background (building, tree crown, trunk, pole)."""

    kind: str
    size: tuple  # (l, w, h) metres
    street: int = -1
    s0: float = 0.0
    d: float = 0.0
    speed: float = 0.0
    yaw_off: float = 0.0
    x0: float = 0.0
    y0: float = 0.0
    vx: float = 0.0
    vy: float = 0.0
    yaw: float = 0.0
    z0: float = 0.0
    category: str | None = None
    detection_name: str | None = None
    attribute: str | None = None
    occ: int = 0
    material: np.ndarray | None = None
    pattern: int = 0
    allowed: tuple = ()  # ground class codes a static actor must stand on (empty: not checked)
    group: int = -1  # actors of one group (a tree's trunk and crown, a truck and its trailer) stay or go together

    @property
    def moving(self):
        return self.speed != 0.0 or self.vx != 0.0 or self.vy != 0.0


class Scene2:
    """One v2 scene (same interface as :class:`perception.synth.scene.Scene` for the generator, plus
    :meth:`ground_height`, physical boxes and materials)."""

    def __init__(self, name, layout, terrain, raster, ego_speed, ego_s0, duration, params, rng):
        self.name, self.layout, self.terrain, self.raster = name, layout, terrain, raster
        self.ego_speed, self.ego_s0, self.duration, self.params = ego_speed, ego_s0, duration, params
        self.ego_d = layout.main.lane_d(layout.ego_lane, -1)
        self.ground = ground_table(rng)
        el, az = float(rng.uniform(0.35, 1.2)), float(rng.uniform(-np.pi, np.pi))
        self.sun = np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)])  # towards the sun
        self.ambient = float(rng.uniform(0.35, 0.55))
        self.sky = np.clip(np.array([150.0, 190.0, 235.0]) * rng.uniform(0.8, 1.1) + rng.uniform(-20, 20, 3), 0, 255)
        self.texture_seed = int(rng.integers(1, 1 << 20))
        self.ring_gain = rng.uniform(0.85, 1.15, 32)  # per-beam intensity calibration of the LiDAR
        self.actors = []
        self._groups = 0

    def __getstate__(self):  # scenes return from worker processes: leave the camera noise buffer behind
        state = dict(self.__dict__)
        state.pop("_noise", None)
        return state

    def new_group(self):
        """A fresh :attr:`Actor2.group` id."""
        self._groups += 1
        return self._groups

    # -- actors -------------------------------------------------------------------------------------------
    def add(self, actor, rng):
        """Append ``actor`` with its Occ3D label and a freshly drawn material; returns it."""
        spec = CLASS_SPECS.get(actor.kind)
        actor.occ = spec.occ if spec else {"building": 15, "pole": 15, "tree": 16, "trunk": 16}[actor.kind]
        actor.material, actor.pattern = object_material(rng, actor.kind, actor.attribute, actor.category)
        self.actors.append(actor)
        return actor

    def freeze(self):
        """Cache the per-actor arrays (call after the last :meth:`add` / removal)."""
        a = self.actors
        self._street = np.array([x.street for x in a], dtype=np.int64)
        self._motion = np.array([[x.s0, x.d, x.speed, x.yaw_off, x.x0, x.y0, x.vx, x.vy, x.yaw, x.z0] for x in a])
        self._motion = self._motion.reshape(-1, 10)
        self._size = np.array([x.size for x in a], dtype=np.float64).reshape(-1, 3)
        self.materials = np.array([x.material for x in a]).reshape(-1, 12)
        self.patterns = np.array([x.pattern for x in a], dtype=np.int64)
        self.annotated = np.array([x.detection_name is not None for x in a], dtype=bool)
        self.occ_labels = np.array([x.occ for x in a], dtype=np.int64)

    def boxes_at(self, t, margin=0.0):
        """``(M, 7)`` boxes at time ``t`` (s): global gravity centre x, y, z, size l, w, h, yaw (radians). With
        ``margin`` (m) annotated boxes shrink to the visible object: sides and top move in, the bottom stays."""
        m, out = self._motion, np.zeros((len(self.actors), 7))
        free = self._street < 0
        out[free, 0] = m[free, 4] + m[free, 6] * t
        out[free, 1] = m[free, 5] + m[free, 7] * t
        out[free, 6] = m[free, 8]
        for k in np.unique(self._street[~free]):
            sel = self._street == k
            path = self.layout.streets[k].path
            s = m[sel, 0] + m[sel, 2] * t
            out[sel, :2] = path.to_global(s, m[sel, 1])
            out[sel, 6] = path.heading(s) + m[sel, 3]
        out[:, 3:6] = self._size
        out[:, 2] = self.ground_height(out[:, :2]) + m[:, 9] + self._size[:, 2] / 2
        if margin > 0:
            ann = self.annotated
            out[ann, 3:6] -= 2 * margin
            out[ann, 5] += margin
            out[ann, 2] -= margin / 2
        return out

    # -- ground -------------------------------------------------------------------------------------------
    def ego_pose(self, t):
        """4x4 ego -> global at time ``t`` (s): level pose on the road surface, x forward along the main street."""
        s = self.ego_s0 + self.ego_speed * t
        path = self.layout.main.path
        xy = path.to_global(s, self.ego_d)
        yaw = float(path.heading(s))
        T = np.eye(4)
        c, si = np.cos(yaw), np.sin(yaw)
        T[:2, :2] = [[c, -si], [si, c]]
        T[:2, 3] = xy
        T[2, 3] = float(self.ground_height(xy[None])[0])
        return T

    def ground_height(self, xy):
        """Terrain height (m, global z) at global ``(..., 2)`` points."""
        return height(self.terrain, self.raster, xy)

    def ground_class(self, xy):
        """Occ3D class (11 driveable, 12 other_flat, 13 sidewalk, 14 terrain) at global ``(..., 2)`` points."""
        return CODE_TO_OCC[self.raster.codes(np.asarray(xy, dtype=np.float64)) & 7]

    def ground_marking(self, xy):
        """Boolean mask of road paint at global ``(..., 2)`` points."""
        return (self.raster.codes(np.asarray(xy, dtype=np.float64)) >> 3) > 0
