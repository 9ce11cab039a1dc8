"""World v2 ground: a raster of ground classes and road paint, and the terrain height.

Frames and units: GLOBAL frame (metres). The raster covers the layout's bounding box: cell ``[iy, ix]`` holds
the point ``(x0 + (ix + 0.5) res, y0 + (iy + 0.5) res)``; outside it the ground is terrain without paint.
A cell's code is ``class | paint << 3`` with class :data:`CODE_TERRAIN` (0), :data:`CODE_ROAD` (1, driveable
surface, crossings included), :data:`CODE_WALKWAY` (2), :data:`CODE_CARPARK` (3) and paint 0 none, 1 white,
2 yellow.

Terrain height (metres, global z): ``base(x, y) + kerb * raised`` where ``base`` is a gentle plane plus three
sinusoids (all smooth, slope bounded by :attr:`Terrain.lipschitz`) and ``raised`` is 1 on walkways and
terrain (kerbs: walkways and verges stand ``kerb`` above the road and car park surface).
"""

import numpy as np
from PIL import Image, ImageDraw

from perception.synth.specs import (
    OCC_DRIVEABLE,
    OCC_OTHER_FLAT,
    OCC_SIDEWALK,
    OCC_TERRAIN,
)

CODE_TERRAIN, CODE_ROAD, CODE_WALKWAY, CODE_CARPARK = 0, 1, 2, 3
CODE_TO_OCC = np.array([OCC_TERRAIN, OCC_DRIVEABLE, OCC_SIDEWALK, OCC_OTHER_FLAT], dtype=np.uint8)
RAISED = np.array([1, 0, 1, 0], dtype=np.uint8)  # by class code


class Terrain:
    """``params`` (float64 vector, the numba kernels' layout): ``[x0, y0, gx, gy, kerb, lipschitz,
    (amplitude, kx, ky, phase) x 3]``; heights relative to the scene origin ``(x0, y0)``."""

    def __init__(self, rng, p, origin):
        grade = float(rng.uniform(0.3, 1.0)) * p.terrain_grade
        a = float(rng.uniform(-np.pi, np.pi))
        waves = []
        for scale, amp in ((2.5, 1.0), (1.6, 0.5), (1.0, 0.25)):
            k = 2 * np.pi / (p.terrain_wavelength * scale * float(rng.uniform(0.9, 1.2)))
            b = float(rng.uniform(-np.pi, np.pi))
            waves.append((p.terrain_amplitude * amp * float(rng.uniform(0.6, 1.0)), k * np.cos(b), k * np.sin(b),
                          float(rng.uniform(-np.pi, np.pi))))
        lip = grade + sum(w[0] * np.hypot(w[1], w[2]) for w in waves)
        self.params = np.array([origin[0], origin[1], grade * np.cos(a), grade * np.sin(a), p.kerb_height, lip]
                               + [v for w in waves for v in w], dtype=np.float64)

    @property
    def kerb(self):
        return float(self.params[4])

    def base(self, xy):
        """Smooth base height (m) at global ``(..., 2)`` points."""
        q = self.params
        x, y = xy[..., 0] - q[0], xy[..., 1] - q[1]
        h = q[2] * x + q[3] * y
        for j in range(3):
            a, kx, ky, ph = q[6 + 4 * j: 10 + 4 * j]
            h = h + a * np.sin(kx * x + ky * y + ph)
        return h

    def normal(self, xy):
        """Unit normal ``(..., 3)`` of the base surface (kerb faces are ignored)."""
        q = self.params
        x, y = xy[..., 0] - q[0], xy[..., 1] - q[1]
        gx, gy = np.full(x.shape, q[2]), np.full(x.shape, q[3])
        for j in range(3):
            a, kx, ky, ph = q[6 + 4 * j: 10 + 4 * j]
            c = a * np.cos(kx * x + ky * y + ph)
            gx, gy = gx + c * kx, gy + c * ky
        n = np.stack([-gx, -gy, np.ones_like(gx)], axis=-1)
        return n / np.linalg.norm(n, axis=-1, keepdims=True)


class GroundRaster:
    """Class/paint codes of the ground (see module doc) rasterised from a :class:`perception.synth.layout.Layout`."""

    def __init__(self, layout, res):
        from shapely.ops import unary_union

        geoms = [layout.drivable, layout.walkway] + [c[0] for c in layout.carparks]
        x0, y0, x1, y1 = unary_union(geoms).bounds
        self.res = float(res)
        self.x0, self.y0 = x0 - 2.0, y0 - 2.0
        self.nx = int(np.ceil((x1 + 2.0 - self.x0) / res))
        self.ny = int(np.ceil((y1 + 2.0 - self.y0) / res))
        code = np.zeros((self.ny, self.nx), dtype=np.uint8)
        for geom, value in ([(c[0], CODE_CARPARK) for c in layout.carparks]
                            + [(layout.walkway, CODE_WALKWAY), (layout.drivable, CODE_ROAD)]):
            code[self._mask(geom)] = value
        for kind in (1, 2):
            m = self._mask([g for g, k in layout.paint if k == kind])
            code[m & (code == CODE_ROAD)] |= np.uint8(kind << 3)
        self.code = code
        self.meta = np.array([self.x0, self.y0, self.res, self.nx, self.ny], dtype=np.float64)

    def _mask(self, geoms):
        """Boolean ``(ny, nx)`` mask of the cells whose centre lies in ``geoms`` (polygons, holes honoured)."""
        img = Image.new("L", (self.nx, self.ny), 0)
        draw = ImageDraw.Draw(img)
        todo = list(geoms) if isinstance(geoms, (list, tuple)) else [geoms]
        polys = []
        while todo:
            g = todo.pop()
            if g.is_empty:
                continue
            if g.geom_type == "Polygon":
                polys.append(g)
            elif hasattr(g, "geoms"):
                todo.extend(g.geoms)

        def px(ring):
            return [((x - self.x0) / self.res - 0.5, (y - self.y0) / self.res - 0.5) for x, y in ring.coords]

        for g in polys:
            draw.polygon(px(g.exterior), fill=1)
            for hole in g.interiors:
                draw.polygon(px(hole), fill=0)
        return np.asarray(img, dtype=bool)

    def codes(self, xy):
        """Codes (uint8) at global ``(..., 2)`` points (terrain outside the raster)."""
        ix = np.floor((xy[..., 0] - self.x0) / self.res).astype(np.int64)
        iy = np.floor((xy[..., 1] - self.y0) / self.res).astype(np.int64)
        inside = (ix >= 0) & (ix < self.nx) & (iy >= 0) & (iy < self.ny)
        out = np.zeros(ix.shape, dtype=np.uint8)
        out[inside] = self.code[iy[inside], ix[inside]]
        return out


def height(terrain, raster, xy):
    """Ground height (m, global z) at global ``(..., 2)`` points: base plus the kerb where raised."""
    xy = np.asarray(xy, dtype=np.float64)
    return terrain.base(xy) + terrain.kerb * RAISED[raster.codes(xy) & 7]
