"""World v2 actors, continued: work zones (cones and barriers in varied arrangements, construction vehicles,
workers), pedestrians (walkways, crossings, groups) and the unannotated background (buildings, trees, poles).

Frames and units as in :mod:`perception.synth.placement`: street coordinates ``(s, d)`` or GLOBAL x, y
(metres), m/s, radians.
"""

import numpy as np

from perception.synth.ground import CODE_TERRAIN, CODE_WALKWAY
from perception.synth.placement import make
from perception.synth.scene_v2 import Actor2


def _lane_closure(sc, rng, k, s, sign):
    """Close the kerb lane (or parking strip) of street ``k`` on side ``sign`` from ``s``: a cone taper, a row
    of cones or barriers along the closed lane, barriers across its ends, a construction vehicle, workers."""
    st = sc.layout.streets[k]
    j = st.side(sign)
    length = float(rng.uniform(15, 40))
    inner = sign * (st.kerb(sign) - (st.park[j] if st.park[j] > 0 else st.lane_w))  # d of the closed band's inner edge
    outer = sign * st.kerb(sign)
    taper = float(rng.uniform(6, 14))
    spacing = float(rng.uniform(1.2, 2.5))
    for a in np.arange(0.0, taper, spacing):  # taper: from the kerb out to the inner edge
        d = outer + (inner - outer) * a / taper
        make(sc, rng, "traffic_cone", None, street=k, s0=s + a, d=d, yaw_off=float(rng.uniform(-np.pi, np.pi)))
    row_kind = "barrier" if rng.random() < 0.5 else "traffic_cone"
    step = float(rng.uniform(2.2, 3.2)) if row_kind == "barrier" else spacing * float(rng.uniform(1.0, 2.0))
    for a in np.arange(taper, length, step):
        make(sc, rng, row_kind, None, street=k, s0=s + a, d=inner - sign * 0.4,
             yaw_off=(np.pi / 2 if row_kind == "barrier" else 0.0) + float(rng.normal(0, 0.08)))
    for end in (taper + 1.0, length):  # barriers across the closed band
        w = abs(outer - inner)
        for b in np.arange(0.0, w - 1.0, 2.2):
            make(sc, rng, "barrier", None, street=k, s0=s + end, d=inner + sign * (b + 1.1),
                 yaw_off=float(rng.normal(0, 0.1)))
    mid = s + (taper + length) / 2
    make(sc, rng, "construction_vehicle", "vehicle.stopped" if rng.random() < 0.5 else "vehicle.parked", street=k,
         s0=mid, d=(inner + outer) / 2, yaw_off=float(rng.normal(0, 0.1)) + (np.pi if sign > 0 else 0.0))
    for _ in range(int(rng.integers(0, 3))):
        make(sc, rng, "pedestrian", "pedestrian.standing", "human.pedestrian.construction_worker", street=k,
             s0=mid + float(rng.uniform(-6, 6)), d=(inner + outer) / 2 + sign * float(rng.uniform(-0.5, 0.5)),
             yaw_off=float(rng.uniform(-np.pi, np.pi)))


def _site(sc, rng, k, s, sign):
    """An off-road construction site on the terrain beyond a walkway: barriers fencing a rectangle, machines,
    a parked trailer, cones at the entrance."""
    st = sc.layout.streets[k]
    d0 = sign * (st.kerb(sign) + st.walk[st.side(sign)] + float(rng.uniform(1.0, 4.0)))
    length, depth = float(rng.uniform(14, 30)), float(rng.uniform(10, 20))
    for a in np.arange(0.0, length, 2.5):  # the fence along the walkway side, with a gap as entrance
        if abs(a - length / 2) > 3.0:
            make(sc, rng, "barrier", None, street=k, s0=s + a, d=d0, yaw_off=np.pi / 2 + float(rng.normal(0, 0.06)),
                 allowed=(CODE_TERRAIN,))
    for a in np.arange(1.2, depth, 2.5):  # the fence's short sides
        for end in (0.0, length):
            make(sc, rng, "barrier", None, street=k, s0=s + end, d=d0 + sign * a, yaw_off=float(rng.normal(0, 0.06)),
                 allowed=(CODE_TERRAIN,))
    for _ in range(int(rng.integers(1, 3))):
        make(sc, rng, "construction_vehicle", "vehicle.parked", street=k, s0=s + float(rng.uniform(4, length - 4)),
             d=d0 + sign * float(rng.uniform(4, depth - 3)), yaw_off=float(rng.uniform(-np.pi, np.pi)),
             allowed=(CODE_TERRAIN,))
    if rng.random() < 0.5:
        make(sc, rng, "trailer", "vehicle.parked", street=k, s0=s + length / 2, d=d0 + sign * (depth - 2.0),
             yaw_off=float(rng.normal(0, 0.1)), allowed=(CODE_TERRAIN,))
    for b in (-1, 1):
        make(sc, rng, "traffic_cone", None, street=k, s0=s + length / 2 + b * 2.8, d=d0 - sign * 0.8,
             yaw_off=float(rng.uniform(-np.pi, np.pi)))


def _cluster(sc, rng, k, s, sign):
    """A loose group of cones (or a barrier line) on the walkway or the road edge, in a random arrangement."""
    st = sc.layout.streets[k]
    j = st.side(sign)
    d_c = sign * (st.kerb(sign) + (st.walk[j] / 2 if rng.random() < 0.5 else -1.0))
    kind = "traffic_cone" if rng.random() < 0.6 else "barrier"
    shape = int(rng.integers(3))
    n = int(rng.integers(3, 8))
    for i in range(n):
        if shape == 0:  # ring
            a = 2 * np.pi * i / n
            ds, dd, yaw = 1.6 * np.cos(a), 1.6 * np.sin(a), a + np.pi / 2
        elif shape == 1:  # diagonal line
            ds, dd, yaw = 1.8 * i, 0.35 * i * -sign, 0.3
        else:  # scatter
            ds, dd, yaw = float(rng.uniform(-4, 4)), float(rng.uniform(-1, 1)), float(rng.uniform(-np.pi, np.pi))
        make(sc, rng, kind, None, street=k, s0=s + ds, d=d_c + dd, yaw_off=yaw + float(rng.normal(0, 0.1)))


def work_zones(sc, rng):
    """0-2 lane closures, 0-1 construction site, 1-3 cone / barrier groups near the ego's path."""
    lay, ego_end = sc.layout, sc.ego_s0 + sc.ego_speed * sc.duration

    def pick():  # a random street 30% of the time, else the main street
        return int(rng.integers(len(lay.streets))) if rng.random() < 0.3 else 0

    for _ in range(int(rng.integers(0, 3))):
        k = pick()
        st = lay.streets[k]
        s = float(rng.uniform(st.s0 + 10, st.s1 - 40)) if k > 0 else float(rng.uniform(-40, ego_end + 40))
        _lane_closure(sc, rng, k, s, int(rng.choice([-1, 1])))
    if rng.random() < 0.5:
        _site(sc, rng, 0, float(rng.uniform(-30, ego_end + 30)), int(rng.choice([-1, 1])))
    for _ in range(int(rng.integers(1, 4))):
        k = pick()
        st = lay.streets[k]
        s = float(rng.uniform(st.s0 + 5, st.s1 - 5)) if k > 0 else float(rng.uniform(-40, ego_end + 40))
        _cluster(sc, rng, k, s, int(rng.choice([-1, 1])))


def pedestrians(sc, rng, p):
    """People walking along walkways (each their own offset and speed), standing alone or in groups."""
    T, dens = sc.duration, max(p.pedestrian_density, 1e-3)
    for k, st in enumerate(sc.layout.streets):
        for sign in (-1, 1):
            j = st.side(sign)
            kerb, w = st.kerb(sign), st.walk[j]

            def d_of(sign=sign, kerb=kerb, w=w):
                return sign * (kerb + float(rng.uniform(0.35, max(0.4, w - 0.35))))

            for s in np.arange(st.s0 - 2.0 * T, st.s1 + 2.0 * T, float(rng.uniform(8, 18)) / dens):
                v = float(rng.uniform(0.5, 1.9)) * float(rng.choice([-1, 1]))
                make(sc, rng, "pedestrian", "pedestrian.moving", street=k, s0=float(s + rng.uniform(0, 5)), d=d_of(),
                     speed=v, yaw_off=0.0 if v > 0 else np.pi)
            for s in np.arange(st.s0, st.s1, float(rng.uniform(15, 40)) / dens):
                for _ in range(1 if rng.random() < 0.7 else int(rng.integers(2, 5))):
                    make(sc, rng, "pedestrian", "pedestrian.standing", street=k, s0=float(s + rng.uniform(-1.5, 1.5)),
                         d=d_of(), yaw_off=float(rng.uniform(-np.pi, np.pi)), allowed=(CODE_WALKWAY,))


def crossing_pedestrians(sc, rng):
    """People walking across the crossings and waiting at their kerbs (placed before the traffic, so vehicles
    that would run into them are the ones dropped)."""
    for k, s, width, _ in sc.layout.crossings:
        st = sc.layout.streets[k]
        half_road = max(st.kerb(-1), st.kerb(1))
        for _ in range(int(rng.integers(1, 5))):
            sm = s + float(rng.uniform(0.5, width - 0.5))
            h = float(st.path.heading(sm))
            direction = float(rng.choice([-1, 1]))
            v = float(rng.uniform(0.8, 1.7))
            d0 = float(rng.uniform(-half_road - 2, half_road + 2))
            xy = st.path.to_global(sm, d0)
            vx, vy = -np.sin(h) * v * direction, np.cos(h) * v * direction
            make(sc, rng, "pedestrian", "pedestrian.moving", x0=float(xy[0]), y0=float(xy[1]), vx=vx, vy=vy,
                 yaw=float(np.arctan2(vy, vx)))
        for sign in (-1, 1):  # waiting at the kerb
            if rng.random() < 0.5:
                xy = st.path.to_global(s + width / 2, sign * (st.kerb(sign) + 0.6))
                make(sc, rng, "pedestrian", "pedestrian.standing", x0=float(xy[0]), y0=float(xy[1]),
                     yaw=float(st.path.heading(s)) - sign * np.pi / 2, allowed=(CODE_WALKWAY,))


def _fill(rng, lo, hi, gaps, place):
    s = lo + float(rng.uniform(0, gaps[1]))
    while s < hi:
        s += place(s) + float(rng.uniform(*gaps))


def background(sc, rng):
    """Unannotated buildings (manmade) with set-backs, trees (trunk and crown, vegetation) and poles (manmade)
    along every street, standing on the terrain / walkway edge."""
    for k, st in enumerate(sc.layout.streets):
        for sign in (-1, 1):
            j = st.side(sign)
            edge = st.kerb(sign) + st.walk[j]

            def building(s, sign=sign, edge=edge, k=k):
                size = (float(rng.uniform(10, 30)), float(rng.uniform(8, 14)), float(rng.uniform(5, 22)))
                d = sign * (edge + float(rng.uniform(1.0, 6.0)) + size[1] / 2)
                sc.add(Actor2("building", size, street=k, s0=s + size[0] / 2, d=d, yaw_off=float(rng.normal(0, 0.03)),
                              allowed=(CODE_TERRAIN,)), rng)
                return size[0]

            _fill(rng, st.s0 - 40.0, st.s1 + 40.0, (2.0, 14.0), building)
            for s in np.arange(st.s0, st.s1, float(rng.uniform(9, 18))):
                s = float(s + rng.uniform(-2, 2))
                d = sign * (edge + float(rng.uniform(-0.6, 0.8)))
                trunk_h, crown = float(rng.uniform(1.8, 3.0)), float(rng.uniform(2.0, 4.5))
                g = sc.new_group()
                sc.add(Actor2("trunk", (0.35, 0.35, trunk_h), street=k, s0=s, d=d, group=g), rng)
                sc.add(Actor2("tree", (crown, crown, crown * float(rng.uniform(0.8, 1.3))), street=k, s0=s, d=d,
                              z0=trunk_h, yaw_off=float(rng.uniform(0, np.pi)), group=g), rng)
            for s in np.arange(st.s0 + float(rng.uniform(0, 20)), st.s1, float(rng.uniform(20, 40))):
                sc.add(Actor2("pole", (0.25, 0.25, float(rng.uniform(4, 9))), street=k, s0=float(s),
                              d=sign * (st.kerb(sign) + 0.4), allowed=(CODE_WALKWAY,)), rng)
