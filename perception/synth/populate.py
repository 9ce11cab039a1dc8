"""A v2 scene from end to end: the street layout, the terrain, then every actor in priority order.

Here, above :mod:`perception.synth.scene_v2` (the scene's data), :mod:`perception.synth.placement` and
:mod:`perception.synth.zones` (where things stand) and :mod:`perception.synth.prune` (what may stay), so that
the modules below import one way.
"""

from perception.synth.ground import GroundRaster, Terrain
from perception.synth.layout import build_layout
from perception.synth.placement import carpark, ensure_classes, parked, traffic
from perception.synth.prune import prune
from perception.synth.scene_v2 import Scene2
from perception.synth.zones import background, crossing_pedestrians, pedestrians, work_zones


def build_scene_v2(rng, name, origin, duration, params):
    """Random v2 scene around global ``origin`` (x, y metres) lasting ``duration`` seconds (``params``: the
    :class:`perception.synth.world.WorldParams`)."""
    ego_speed = float(rng.uniform(params.ego_speed_min, params.ego_speed_max))
    ego_end = ego_speed * duration
    margin = 90.0
    layout = build_layout(rng, params, origin, -margin, ego_end + margin, (0.0, ego_end))
    terrain = Terrain(rng, params, origin)
    raster = GroundRaster(layout, params.raster_resolution)
    sc = Scene2(name, layout, terrain, raster, ego_speed, 0.0, duration, params, rng)
    populate(sc, rng)
    return sc


def populate(sc, rng):
    """All actors of a scene, in priority order, then the ground check and the overlap pruning."""
    p = sc.params
    ensure_classes(sc, rng)
    work_zones(sc, rng)
    carpark(sc, rng)
    parked(sc, rng, p)
    crossing_pedestrians(sc, rng)
    traffic(sc, rng, p)
    pedestrians(sc, rng, p)
    background(sc, rng)
    prune(sc)
