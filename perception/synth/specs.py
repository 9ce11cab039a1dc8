"""Constants shared by the synthetic worlds: the v1 street's lateral layout, Occ3D class indices of the ground
and background, and the per-class look of world v1 (:class:`ClassSpec`; world v2 takes only sizes' order of
magnitude, categories and Occ3D labels from it).

Units: metres, RGB 0-255, LiDAR intensity 0-255.
"""

from dataclasses import dataclass

# Lateral layout of the street (metres from the centre line).
LANE_WIDTH = 3.5
ROAD_HALF_WIDTH = 9.0  # lanes (2 x 3.5) + parking strip (2.0), all drivable
PARKING_D = 8.0
SIDEWALK_OUTER = 12.0
EGO_D = -1.75

# Occ3D class indices (perception.constants.OCC3D_CLASSES) for the ground and the background.
OCC_DRIVEABLE, OCC_OTHER_FLAT, OCC_SIDEWALK, OCC_TERRAIN, OCC_MANMADE, OCC_VEGETATION = 11, 12, 13, 14, 15, 16


@dataclass(frozen=True)
class ClassSpec:
    """How one detection class looks in the synthetic world.

    ``size`` is ``(l, w, h)`` metres (length along the heading); ``categories`` are real nuScenes category
    names (the first is the most common); ``colour`` is the RGB the camera paints it; ``occ`` its Occ3D
    label; ``reflectivity`` the LiDAR intensity (0-255) of its surface.
    """

    name: str
    categories: tuple
    size: tuple
    colour: tuple
    occ: int
    reflectivity: float


CLASS_SPECS = {
    "car": ClassSpec("car", ("vehicle.car",), (4.6, 1.9, 1.7), (220, 20, 20), 4, 60.0),
    "truck": ClassSpec("truck", ("vehicle.truck",), (7.0, 2.5, 3.0), (20, 60, 220), 10, 55.0),
    "construction_vehicle": ClassSpec(
        "construction_vehicle", ("vehicle.construction",), (6.5, 2.7, 3.2), (230, 220, 0), 5, 70.0
    ),
    "bus": ClassSpec("bus", ("vehicle.bus.rigid", "vehicle.bus.bendy"), (11.0, 2.9, 3.5), (255, 140, 0), 3, 50.0),
    "trailer": ClassSpec("trailer", ("vehicle.trailer",), (12.0, 2.5, 3.8), (120, 0, 180), 9, 45.0),
    "barrier": ClassSpec("barrier", ("movable_object.barrier",), (0.5, 2.0, 1.0), (255, 0, 255), 1, 90.0),
    "motorcycle": ClassSpec("motorcycle", ("vehicle.motorcycle",), (2.1, 0.8, 1.5), (0, 220, 220), 6, 40.0),
    "bicycle": ClassSpec("bicycle", ("vehicle.bicycle",), (1.8, 0.6, 1.3), (140, 255, 140), 2, 35.0),
    "pedestrian": ClassSpec(
        "pedestrian",
        ("human.pedestrian.adult", "human.pedestrian.child", "human.pedestrian.construction_worker"),
        (0.7, 0.7, 1.75),
        (255, 170, 200),
        7,
        25.0,
    ),
    "traffic_cone": ClassSpec("traffic_cone", ("movable_object.trafficcone",), (0.4, 0.4, 0.9), (130, 70, 0), 8, 120.0),
}

# Background colours (RGB) and LiDAR reflectivities of what is not an annotated object.
BUILDING_COLOUR, TREE_COLOUR = (150, 140, 125), (30, 90, 30)
BUILDING_REFLECTIVITY, TREE_REFLECTIVITY = 20.0, 12.0
