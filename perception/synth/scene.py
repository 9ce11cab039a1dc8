"""The synthetic world v1 of one scene: a curved road, actors with tracks, static background (the actors are
placed by :func:`perception.synth.scene_v1.build_scene`).

Frames and units: everything here is in the nuScenes GLOBAL frame (map coordinates, metres, z up, the ground
is the plane z = 0) and times are seconds since the scene's first sensor timestamp.

Road coordinates ``(s, d)``: ``s`` is the arc length along the road centre line (metres), ``d`` the signed
lateral offset, positive to the left of the driving direction +s. The centre line is a circular arc with
constant curvature ``k`` (1/m, positive = turning left), so the conversion both ways is closed-form.

Lateral layout (|d|, metres): lanes 0-3.5 and 3.5-7 (inner/outer), parking strip 7-9 (drivable),
sidewalk 9-12, terrain beyond 12; buildings 15-27, trees at 13.5. The ego drives in the right inner lane
(d = -1.75) in +s; the left side carries oncoming traffic.
"""

from dataclasses import dataclass, field

import numpy as np

from perception.synth.specs import (  # noqa: F401  (re-exported: the v1 world's constants live in specs.py)
    BUILDING_COLOUR,
    BUILDING_REFLECTIVITY,
    CLASS_SPECS,
    EGO_D,
    LANE_WIDTH,
    OCC_DRIVEABLE,
    OCC_MANMADE,
    OCC_OTHER_FLAT,
    OCC_SIDEWALK,
    OCC_TERRAIN,
    OCC_VEGETATION,
    PARKING_D,
    ROAD_HALF_WIDTH,
    SIDEWALK_OUTER,
    TREE_COLOUR,
    TREE_REFLECTIVITY,
    ClassSpec,
)


@dataclass
class Road:
    """A circular-arc street: centre line through ``origin`` (global x, y, metres) with heading ``heading0``
    (radians, counter-clockwise from global +x) at ``s = 0`` and constant curvature ``k`` (1/m, non-zero),
    drawn (map) for ``s`` in ``[s_min, s_max]``."""

    origin: tuple
    heading0: float
    k: float
    s_min: float
    s_max: float

    def __post_init__(self):
        if self.k == 0:
            raise ValueError("Road.k (curvature) must be non-zero")
        o = np.asarray(self.origin, dtype=np.float64)
        # Circle centre: the centre line is p(s) = C + (1/k) (sin h, -cos h), h = heading0 + k s.
        self.centre = o + np.array([-np.sin(self.heading0), np.cos(self.heading0)]) / self.k

    def heading(self, s):
        """Heading (radians, global) of the +s direction at arc length ``s``."""
        return self.heading0 + self.k * np.asarray(s, dtype=np.float64)

    def to_global(self, s, d):
        """Road coordinates ``(s, d)`` (metres) -> global ``(..., 2)`` x, y (metres)."""
        h = self.heading(s)
        r = 1.0 / self.k - np.asarray(d, dtype=np.float64)
        return np.stack([self.centre[0] + r * np.sin(h), self.centre[1] - r * np.cos(h)], axis=-1)

    def to_road(self, xy):
        """Global ``(..., 2)`` x, y (metres) -> ``(s, d)`` road coordinates (metres), each ``(...)``."""
        xy = np.asarray(xy, dtype=np.float64)
        v = xy - self.centre
        sgn = np.sign(self.k)
        rho = sgn * np.hypot(v[..., 0], v[..., 1])  # = 1/k - d
        d = 1.0 / self.k - rho
        h = np.arctan2(v[..., 0] / rho, -v[..., 1] / rho)
        dh = (h - self.heading0 + np.pi) % (2 * np.pi) - np.pi
        return dh / self.k, d


@dataclass
class Actor:
    """A box moving along the road with constant speed: ``s(t) = s0 + speed * t``, fixed offset ``d``.

    ``size`` ``(l, w, h)`` metres; ``facing`` +1 heads along +s, -1 against it. ``detection_name`` is
    ``None`` for unannotated background (buildings, trees); ``z0`` lifts the box bottom above the ground.
    """

    kind: str  # detection class name, "building" or "tree"
    size: tuple
    s0: float
    d: float
    speed: float = 0.0
    facing: int = 1
    z0: float = 0.0
    category: str | None = None
    detection_name: str | None = None
    attribute: str | None = None
    colour: tuple = (128, 128, 128)
    occ: int = 0
    reflectivity: float = 30.0


@dataclass
class Scene:
    """One scene's world. ``ego_s0`` and ``ego_speed`` (m/s) drive the ego along ``d = EGO_D``."""

    name: str
    road: Road
    ego_s0: float
    ego_speed: float
    duration: float
    actors: list[Actor] = field(default_factory=list)
    carpark: tuple = (0.0, 0.0, 1)  # (s_start, s_end, side +1 left / -1 right): other_flat area beyond the sidewalk
    crossing_s: float = 0.0  # pedestrian crossing [crossing_s, crossing_s + 4] across the road

    def ego_pose(self, t):
        """4x4 ego -> global at time ``t`` (s): ego origin on the ground (z = 0), x forward along +s."""
        s = self.ego_s0 + self.ego_speed * t
        xy = self.road.to_global(s, EGO_D)
        yaw = float(self.road.heading(s))
        T = np.eye(4)
        c, si = np.cos(yaw), np.sin(yaw)
        T[:2, :2] = [[c, -si], [si, c]]
        T[:2, 3] = xy
        return T

    def boxes_at(self, t):
        """``(M, 7)`` float64 boxes of all actors at time ``t``: global gravity centre x, y, z, size l, w, h,
        yaw (radians, heading of the box's length axis, counter-clockwise from global +x)."""
        out = np.zeros((len(self.actors), 7))
        for i, a in enumerate(self.actors):
            s = a.s0 + a.speed * t
            out[i, :2] = self.road.to_global(s, a.d)
            out[i, 2] = a.z0 + a.size[2] / 2
            out[i, 3:6] = a.size
            out[i, 6] = self.road.heading(s) + (0.0 if a.facing > 0 else np.pi)
        return out

    def velocities(self):
        """``(M,)`` signed speeds along the heading (m/s) of every actor."""
        return np.array([a.speed * a.facing for a in self.actors])

    def ground_class(self, xy):
        """Occ3D class of the ground (z = 0) at global ``(..., 2)`` points: driveable_surface on the road,
        sidewalk, other_flat on the car park, terrain elsewhere."""
        s, d = self.road.to_road(xy)
        ad = np.abs(d)
        out = np.full(ad.shape, OCC_TERRAIN, dtype=np.uint8)
        out[ad < SIDEWALK_OUTER] = OCC_SIDEWALK
        out[ad < ROAD_HALF_WIDTH] = OCC_DRIVEABLE
        c0, c1, side = self.carpark
        park = (s >= c0) & (s <= c1) & (d * side >= SIDEWALK_OUTER) & (d * side <= SIDEWALK_OUTER + 12.0)
        out[park] = OCC_OTHER_FLAT
        return out


    def ground_marking(self, xy):
        """Boolean mask of white paint at global ``(..., 2)`` points: the centre line, dashed lane lines
        (3 m on, 6 m off), the zebra crossing (stripes 0.5 m wide across ``[crossing_s, crossing_s + 4]``)
        and its stop lines 2 m before it on either side."""
        s, d = self.road.to_road(xy)
        ad = np.abs(d)
        centre = ad < 0.12
        dashed = (np.abs(ad - LANE_WIDTH) < 0.08) & (np.mod(s, 9.0) < 3.0)
        edge = np.abs(ad - 2 * LANE_WIDTH) < 0.08
        on_crossing = (s >= self.crossing_s) & (s <= self.crossing_s + 4.0) & (ad < ROAD_HALF_WIDTH)
        zebra = on_crossing & (np.mod(d, 1.0) < 0.5)
        stop = (np.abs(s - (self.crossing_s - 2.0)) < 0.2) & (d < 0) & (ad < 2 * LANE_WIDTH)
        stop |= (np.abs(s - (self.crossing_s + 6.0)) < 0.2) & (d > 0) & (ad < 2 * LANE_WIDTH)
        return centre | dashed | edge | zebra | stop
