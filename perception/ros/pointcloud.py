"""``sensor_msgs/PointCloud2`` <-> ``(N, C)`` numpy points.

Reader :func:`pointcloud2_to_points` is duck-typed (any object with the PointCloud2 attributes, ``data`` as
bytes / bytearray / ``array.array('B')`` / numpy uint8 / list of ints) and vectorised: one numpy structured
dtype (names, formats, offsets, ``itemsize = point_step``) is laid over the payload with strides
``(row_step, point_step)``, so any field order, padding, datatype (INT8..FLOAT64), endianness, organised
(``height > 1``) cloud and row padding is read without a Python loop over points.

Builders :func:`make_pointcloud2` / :func:`points_to_pointcloud2` return ``sensor_msgs.msg.PointCloud2``.
"""

import numpy as np

from perception.ros._buffers import as_uint8, to_byte_array
from perception.ros.errors import MessageError

# sensor_msgs/PointField datatype constants -> numpy base type (endianness prefixed per message).
POINTFIELD_DTYPES = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4", 8: "f8"}
_NUMPY_TO_POINTFIELD = {
    np.dtype(np.int8): 1, np.dtype(np.uint8): 2, np.dtype(np.int16): 3, np.dtype(np.uint16): 4,
    np.dtype(np.int32): 5, np.dtype(np.uint32): 6, np.dtype(np.float32): 7, np.dtype(np.float64): 8,
}
# Accepted names of the intensity channel, in order of preference.
INTENSITY_NAMES = ("intensity", "i", "reflectivity")


def _field_table(msg):
    """``{name: (offset, datatype, count)}`` of the message's fields (first occurrence of a name wins)."""
    table = {}
    for f in msg.fields or ():
        name = str(f.name)
        if name not in table:
            table[name] = (int(f.offset), int(f.datatype), max(int(f.count), 1))
    return table


def _layout(msg, table, wanted):
    """Validate the message layout for the ``wanted`` fields; returns (height, width, point_step, row_step)."""
    height, width = int(msg.height), int(msg.width)
    point_step, row_step = int(msg.point_step), int(msg.row_step)
    if height < 0 or width < 0:
        raise MessageError(f"PointCloud2: negative size height={height} width={width}", "pointcloud_layout")
    for name, (offset, datatype, count) in table.items():
        if datatype not in POINTFIELD_DTYPES:
            if name in wanted:
                raise MessageError(
                    f"PointCloud2: field '{name}' has unknown datatype {datatype} (expected 1..8)", "pointcloud_layout"
                )
            continue  # an unused field of an unknown type does not matter
        nbytes = np.dtype(POINTFIELD_DTYPES[datatype]).itemsize * count
        if offset < 0 or offset + nbytes > point_step:
            raise MessageError(
                f"PointCloud2: point_step {point_step} < end of field '{name}' (offset {offset}, {nbytes} bytes)",
                "pointcloud_layout",
            )
    if height * width == 0:
        return height, width, point_step, row_step
    if row_step < width * point_step:
        raise MessageError(
            f"PointCloud2: row_step {row_step} < width {width} * point_step {point_step}", "pointcloud_layout"
        )
    return height, width, point_step, row_step


def _payload(msg, height, row_step):
    """``msg.data`` as uint8, checked to hold ``row_step * height`` bytes."""
    buf = as_uint8(msg.data, "PointCloud2", "pointcloud_layout")
    if len(buf) < row_step * height:
        raise MessageError(
            f"PointCloud2: data has {len(buf)} bytes < row_step {row_step} * height {height} = {row_step * height}",
            "pointcloud_layout",
        )
    return buf


def pointcloud2_to_points_with_stats(msg):
    """Like :func:`pointcloud2_to_points` but returns ``(points, n_dropped)``: ``n_dropped`` is the number
    of points removed because one of x, y, z, intensity is NaN/inf (``is_dense=False`` clouds, and clouds
    that claim to be dense but are not)."""
    table = _field_table(msg)
    missing = [a for a in ("x", "y", "z") if a not in table]
    if missing:
        raise MessageError(
            f"PointCloud2: no field '{missing[0]}' (fields: {list(table)})", "pointcloud_no_xyz"
        )
    inten = next((n for n in INTENSITY_NAMES if n in table), None)
    names = ["x", "y", "z"] + ([inten] if inten else [])
    height, width, point_step, row_step = _layout(msg, table, names)
    n = height * width
    if n == 0:
        return np.zeros((0, 4), np.float32), 0
    buf = _payload(msg, height, row_step)
    endian = ">" if bool(msg.is_bigendian) else "<"
    formats = []
    for name in names:
        _, datatype, count = table[name]
        base = endian + POINTFIELD_DTYPES[datatype]
        formats.append(base if count == 1 else (base, (count,)))
    dtype = np.dtype(
        {"names": names, "formats": formats, "offsets": [table[k][0] for k in names], "itemsize": point_step}
    )
    records = np.ndarray(shape=(height, width), dtype=dtype, buffer=buf, offset=0, strides=(row_step, point_step))
    out = np.zeros((n, 4), np.float32)
    for col, name in enumerate(names):  # 3-4 columns, each a vectorised strided copy + cast
        values = records[name]
        if values.ndim == 3:  # count > 1: the first element
            values = values[..., 0]
        out[:, col] = values.reshape(n)
    finite = np.isfinite(out).all(axis=1)
    n_dropped = int(n - np.count_nonzero(finite))
    if n_dropped:
        out = out[finite]
    return out, n_dropped


def pointcloud2_to_points(msg):
    """A PointCloud2 -> ``(N, 4)`` float32: x, y, z (m), intensity (0 without an intensity field; the
    fields ``intensity``, ``i`` or ``reflectivity`` are accepted, values cast as they are, not rescaled).

    Points with a NaN/inf coordinate or intensity are dropped (see
    :func:`pointcloud2_to_points_with_stats` for the count). An empty cloud gives ``(0, 4)``.
    Raises :class:`MessageError` (kinds ``pointcloud_no_xyz``, ``pointcloud_layout``) when x/y/z are
    missing, a field does not fit in ``point_step``, ``row_step < width * point_step`` or
    ``len(data) < row_step * height``.
    """
    return pointcloud2_to_points_with_stats(msg)[0]


def pointcloud2_fields(msg):
    """``{name: (H*W,) array}`` of every field with a known datatype (first element when count > 1), as
    stored (no cast, no NaN filtering). For fields other than x, y, z, intensity (ring, time, label ...)."""
    table = _field_table(msg)
    names = [k for k, (_, dt, _) in table.items() if dt in POINTFIELD_DTYPES]
    height, width, point_step, row_step = _layout(msg, table, names)
    n = height * width
    if n == 0 or not names:
        return {k: np.zeros(0, POINTFIELD_DTYPES[table[k][1]]) for k in names}
    buf = _payload(msg, height, row_step)
    endian = ">" if bool(msg.is_bigendian) else "<"
    out = {}
    for name in names:  # one field per dtype: overlapping fields cannot share a structured dtype
        offset, datatype, count = table[name]
        base = endian + POINTFIELD_DTYPES[datatype]
        fmt = base if count == 1 else (base, (count,))
        dtype = np.dtype({"names": [name], "formats": [fmt], "offsets": [offset], "itemsize": point_step})
        rec = np.ndarray(shape=(height, width), dtype=dtype, buffer=buf, strides=(row_step, point_step))
        values = rec[name]
        if values.ndim == 3:
            values = values[..., 0]
        out[name] = values.reshape(n).astype(np.dtype(POINTFIELD_DTYPES[datatype]))  # native byte order copy
    return out


# ---------------------------------------------------------------------------------------------- builders
def make_pointcloud2(header, columns):
    """A packed little-endian ``sensor_msgs.msg.PointCloud2`` (height 1, is_dense True) from ``columns``:
    ``{name: (N,) array}``; the field order is the dict order. Column dtypes: float32, float64, uint8,
    uint16, int32 (also int8, int16, uint32); other dtypes raise ``ValueError``."""
    from sensor_msgs.msg import PointCloud2, PointField  # the ros extra (optional)

    if not columns:
        raise ValueError("make_pointcloud2: no columns")
    arrays = {}
    n = None
    for name, values in columns.items():
        values = np.asarray(values)
        if values.ndim != 1:
            raise ValueError(f"make_pointcloud2: column '{name}' must be 1-D, got shape {values.shape}")
        if values.dtype not in _NUMPY_TO_POINTFIELD:
            raise ValueError(
                f"make_pointcloud2: column '{name}' has unsupported dtype {values.dtype} "
                f"(supported: {sorted(str(d) for d in _NUMPY_TO_POINTFIELD)})"
            )
        if n is None:
            n = len(values)
        elif len(values) != n:
            raise ValueError(f"make_pointcloud2: column '{name}' has {len(values)} values, expected {n}")
        arrays[str(name)] = values
    dtype = np.dtype([(k, v.dtype.newbyteorder("<")) for k, v in arrays.items()])  # packed
    records = np.empty(n, dtype)
    fields = []
    for k, v in arrays.items():
        records[k] = v
        fields.append(
            PointField(name=k, offset=dtype.fields[k][1], datatype=_NUMPY_TO_POINTFIELD[v.dtype], count=1)
        )
    msg = PointCloud2()
    msg.header = header
    msg.height, msg.width = 1, n
    msg.fields = fields
    msg.is_bigendian = False
    msg.point_step = dtype.itemsize
    msg.row_step = dtype.itemsize * n
    msg.is_dense = True
    msg.data = to_byte_array(records.tobytes())
    return msg


def points_to_pointcloud2(points, header):
    """``(N, 4|5)`` points (x, y, z, intensity [, time lag (s)]) -> PointCloud2 with float32 fields
    ``x, y, z, intensity`` [, ``time``]."""
    points = np.asarray(points)
    if points.ndim != 2 or points.shape[1] not in (4, 5):
        raise ValueError(f"points_to_pointcloud2: points must be (N, 4) or (N, 5), got {points.shape}")
    points = points.astype(np.float32, copy=False)
    names = ("x", "y", "z", "intensity", "time")[: points.shape[1]]
    return make_pointcloud2(header, {k: points[:, i] for i, k in enumerate(names)})
