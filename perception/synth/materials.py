"""World v2 materials: per-instance camera colours and LiDAR intensities drawn from distributions that overlap
across classes (cars in many paints, a bus in any colour, varied clothing, retro-reflective parts on vehicles,
cones, barriers and work vests alike), and per-scene ground materials whose ranges overlap between classes.

Every object has three materials (its pattern decides which covers a surface point, see
:func:`perception.synth.kernels._part`): a row ``[r0, g0, b0, r1, g1, b1, r2, g2, b2, i0, i1, i2]`` with RGB
0-255 and LiDAR intensity 0-255 (surface reflectivity before incidence and range effects).
"""

import numpy as np

from perception.synth import kernels as K

# Paint colours (RGB) and their typical LiDAR intensity.
PAINTS = {
    "white": ((232, 232, 228), 70.0), "silver": ((188, 190, 194), 55.0), "grey": ((118, 120, 124), 35.0),
    "black": ((24, 24, 27), 9.0), "red": ((175, 28, 30), 30.0), "blue": ((32, 62, 158), 22.0),
    "navy": ((22, 30, 78), 12.0), "green": ((40, 112, 62), 24.0), "yellow": ((232, 198, 40), 60.0),
    "orange": ((234, 118, 24), 48.0), "beige": ((198, 180, 140), 45.0), "brown": ((108, 70, 42), 20.0),
    "teal": ((38, 148, 158), 32.0),
}
_P = list(PAINTS)
# Paint probabilities per vehicle class (order of PAINTS); every class can take every colour.
_PAINT_WEIGHTS = {
    "car": [22, 17, 14, 17, 8, 7, 4, 3, 1, 1, 3, 2, 1],
    "truck": [34, 12, 10, 6, 7, 9, 4, 6, 4, 3, 2, 2, 1],
    "bus": [22, 10, 6, 4, 14, 12, 4, 10, 8, 5, 1, 1, 3],
    "trailer": [34, 20, 12, 5, 6, 7, 3, 4, 3, 2, 2, 1, 1],
    "construction_vehicle": [8, 3, 5, 3, 8, 3, 1, 4, 36, 24, 2, 2, 1],
    "motorcycle": [12, 10, 8, 26, 16, 9, 5, 4, 3, 3, 1, 1, 2],
    "bicycle": [12, 10, 9, 22, 13, 11, 5, 6, 4, 3, 1, 2, 2],
}
_PATTERN = {"car": K.P_CAR, "truck": K.P_TRUCK, "bus": K.P_BUS, "trailer": K.P_TRAILER,
            "construction_vehicle": K.P_TRUCK, "motorcycle": K.P_CYCLE, "bicycle": K.P_CYCLE,
            "pedestrian": K.P_PED, "traffic_cone": K.P_CONE, "barrier": K.P_BARRIER, "building": K.P_BUILDING,
            "tree": K.P_PLAIN, "trunk": K.P_PLAIN, "pole": K.P_PLAIN}


def _paint(rng, kind):
    w = np.asarray(_PAINT_WEIGHTS[kind], dtype=np.float64)
    rgb, inten = PAINTS[_P[int(rng.choice(len(_P), p=w / w.sum()))]]
    return _jitter(rng, rgb), inten * float(rng.lognormal(0.0, 0.3))


def _jitter(rng, rgb, spread=0.12, shift=12.0):
    """A colour near ``rgb``: per-channel gain within +-``spread`` and an offset within +-``shift``."""
    rgb = np.asarray(rgb, dtype=np.float64) * rng.uniform(1 - spread, 1 + spread) + rng.uniform(-shift, shift, 3)
    return np.clip(rgb, 0, 255)


def _random_colour(rng, lo=20, hi=235):
    return rng.uniform(lo, hi, 3)


def _clothes(rng):
    """Any clothing colour: saturated, muted or dark (returns RGB, intensity)."""
    u = rng.random()
    if u < 0.5:
        rgb = _random_colour(rng)
    elif u < 0.8:
        rgb = _jitter(rng, (40, 42, 50), 0.3, 20)
    else:
        rgb = _random_colour(rng, 120, 240)
    return rgb, float(8.0 + 0.25 * rgb.mean() * rng.lognormal(0, 0.3))


def object_material(rng, kind, attribute=None, category=None):
    """``(material row (12,), pattern)`` of one new object of ``kind`` (a detection class, "building", "tree"
    "trunk" or "pole"); ``attribute`` / ``category`` as annotated (riders, construction workers)."""
    m = np.zeros(12)
    if kind in ("car", "truck", "bus", "trailer", "construction_vehicle"):
        body, i_body = _paint(rng, kind)
        glass = _jitter(rng, (38, 46, 56), 0.25, 10)
        tyre = _jitter(rng, (28, 28, 30), 0.2, 6)
        i_glass = float(rng.uniform(3, 12))
        if kind == "trailer":  # contour stripe is retro-reflective; its "glass" row is the stripe
            stripe = (220, 60, 40) if rng.random() < 0.5 else (235, 200, 40)
            glass, i_glass = _jitter(rng, stripe, 0.1, 10), float(rng.uniform(90, 200))
        mats = [(body, i_body), (glass, i_glass), (tyre, float(rng.uniform(3, 10)))]
    elif kind in ("motorcycle", "bicycle"):
        frame, i_frame = _paint(rng, kind)
        rider = _clothes(rng) if attribute == "cycle.with_rider" else (frame, i_frame)
        mats = [(frame, i_frame), rider, (_jitter(rng, (30, 30, 32), 0.2, 8), float(rng.uniform(3, 12)))]
    elif kind == "pedestrian":
        shirt = _clothes(rng)
        if category == "human.pedestrian.construction_worker" or rng.random() < 0.04:  # hi-vis vest
            vest = (240, 200, 30) if rng.random() < 0.5 else (245, 120, 30)
            shirt = (_jitter(rng, vest, 0.08, 8), float(rng.uniform(100, 220)))
        if rng.random() < 0.4:
            legs = _clothes(rng)
        else:
            legs = (_jitter(rng, (45, 55, 85), 0.35, 20), float(rng.uniform(6, 30)))
        skin_tones = [(235, 200, 170), (200, 150, 110), (140, 95, 65), (90, 60, 40)]
        skin = _jitter(rng, skin_tones[int(rng.integers(4))], 0.06, 8)
        head = skin if rng.random() < 0.5 else _jitter(rng, (40, 32, 25), 0.4, 15)  # face or hair / hat
        mats = [shirt, legs, (head, float(rng.uniform(8, 40)))]
    elif kind == "traffic_cone":
        base_colours = [(240, 100, 20), (230, 40, 30), (240, 200, 30), (40, 90, 200)]
        base = _jitter(rng, base_colours[int(rng.choice(4, p=[.6, .2, .12, .08]))], 0.08, 10)
        mats = [(base, float(rng.uniform(20, 80))),
                (_jitter(rng, (235, 235, 235), 0.06, 8), float(rng.uniform(80, 230))),
                (_jitter(rng, (30, 30, 30), 0.2, 8), float(rng.uniform(3, 12)))]
    elif kind == "barrier":
        schemes = [((220, 30, 30), (240, 240, 240)), ((240, 200, 30), (25, 25, 25)), ((160, 160, 155), (150, 150, 146)),
                   ((240, 120, 30), (240, 240, 240)), ((40, 80, 190), (235, 235, 235))]
        a, b = schemes[int(rng.choice(5, p=[.3, .2, .25, .15, .1]))]
        reflective = rng.random() < 0.6
        mats = [(_jitter(rng, a, 0.08, 10), float(rng.uniform(15, 70))),
                (_jitter(rng, b, 0.08, 10), float(rng.uniform(70, 200)) if reflective else float(rng.uniform(15, 70))),
                (_jitter(rng, (30, 30, 30)), 8.0)]
    elif kind == "building":
        wall = _jitter(rng, [(150, 140, 125), (180, 170, 155), (140, 70, 55), (210, 205, 195), (110, 110, 115),
                             (200, 180, 120)][int(rng.integers(6))], 0.15, 15)
        mats = [(wall, float(rng.uniform(10, 55))), (_jitter(rng, (50, 65, 80), 0.3, 15), float(rng.uniform(3, 15))),
                (_jitter(rng, (100, 95, 90), 0.3, 15), float(rng.uniform(10, 40)))]
    elif kind == "tree":
        col = _jitter(rng, (40, 95, 35), 0.3, 15) if rng.random() < 0.7 else _jitter(rng, (95, 65, 35), 0.2, 10)
        mats = [(col, float(rng.uniform(5, 40)))] * 3
    elif kind == "trunk":
        mats = [(_jitter(rng, (90, 62, 38), 0.25, 12), float(rng.uniform(8, 35)))] * 3
    else:  # pole
        col = _jitter(rng, (120, 120, 118), 0.3, 20)
        mats = [(col, float(rng.uniform(15, 90)))] * 3
    for j, (rgb, inten) in enumerate(mats):
        m[3 * j: 3 * j + 3] = rgb
        m[9 + j] = min(float(inten), 255.0)
    return m, _PATTERN.get(kind, K.P_PLAIN)


def ground_table(rng):
    """``(6, 4)`` RGB + intensity of this scene's terrain, road, walkway, car park, white and yellow paint.
    Ranges overlap: grey gravel verges look like asphalt, concrete roads like pavements, and intensities
    of all four ground classes share 5-35."""
    terr = [(85, 130, 55), (110, 95, 70), (120, 120, 115), (140, 135, 100)][int(rng.choice(4, p=[.45, .2, .2, .15]))]
    road = [(70, 70, 74), (95, 95, 98), (120, 118, 115), (150, 146, 140)][int(rng.choice(4, p=[.35, .35, .2, .1]))]
    walk = [(165, 160, 150), (125, 120, 118), (150, 95, 80), (110, 110, 112)][int(rng.choice(4, p=[.4, .25, .2, .15]))]
    park = [(80, 80, 84), (120, 118, 112), (150, 140, 120)][int(rng.choice(3))]
    t = np.zeros((6, 4))
    for row, (rgb, lo, hi) in enumerate([(terr, 4, 32), (road, 4, 28), (walk, 8, 36), (park, 5, 30)]):
        t[row, :3] = _jitter(rng, rgb, 0.1, 10)
        t[row, 3] = float(rng.uniform(lo, hi))
    t[4, :3], t[4, 3] = _jitter(rng, (232, 232, 226), 0.06, 8), float(rng.uniform(55, 150))
    t[5, :3], t[5, 3] = _jitter(rng, (225, 185, 60), 0.06, 8), float(rng.uniform(45, 130))
    return t
