"""The ROS 2 message layer (perception.ros): readers on hand-built, rclpy, rosbags and mcap messages, builders,
output conversions. No DDS: messages are built, serialised and deserialised in-process."""

import array
import io
import sys
import time
import types
from types import SimpleNamespace as NS

import numpy as np
import pytest

from perception.constants import BEV_MAP_CLASSES, BEV_MAP_GRID, DETECTION_CLASSES, OCC3D_FREE, OCC3D_GRID, GridSpec
from perception.ros.errors import MessageError
from perception.ros.image import (
    camera_info_to_intrinsics,
    compressed_to_rgb,
    image_to_rgb,
    intrinsics_to_camera_info,
    jpeg_bytes_to_compressed,
    rgb_to_compressed,
    rgb_to_image,
)
from perception.ros.outputs import (
    bev_to_occupancy_grids,
    boxes_to_detection3d_array,
    boxes_to_markers,
    diagnostics_message,
    occupancy_to_markers,
    occupancy_to_pointcloud2,
)
from perception.ros.pointcloud import (
    make_pointcloud2,
    pointcloud2_fields,
    pointcloud2_to_points,
    pointcloud2_to_points_with_stats,
    points_to_pointcloud2,
)
from perception.ros.stamps import make_header, ns_to_stamp, stamp_to_ns
from perception.ros.transforms import (
    matrix_from_pose,
    matrix_to_odometry,
    matrix_to_transform_stamped,
    odometry_to_matrix,
    pose_from_matrix,
    transform_to_matrix,
)

LIDAR_FILE = "n015-2018-08-02-17-16-37+0800__LIDAR_TOP__1533201470948018.pcd.bin"
JPEG_FILE = "n015-2018-07-18-11-07-57+0800__CAM_BACK_LEFT__1531883530447423.jpg"
FIELD_TYPES = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4", 8: "f8"}
DATA_CONTAINERS = {
    "bytes": bytes,
    "bytearray": bytearray,
    "array": lambda b: array.array("B", b),
    "numpy": lambda b: np.frombuffer(b, np.uint8).copy(),
    "list": list,
}


def _typestore():
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_HUMBLE)


def via_rosbags(msg, typename):
    """Serialise an rclpy message to CDR and deserialise it with rosbags (what a bag reader hands over)."""
    from rclpy.serialization import serialize_message

    return _typestore().deserialize_cdr(serialize_message(msg), typename)


def duck_cloud(specs, values, height=1, row_pad=0, bigendian=False, point_step=None, dense=True, container=bytes):
    """A duck-typed PointCloud2: ``specs`` [(name, offset, datatype)], ``values`` {name: (H*W,) array}."""
    n = len(next(iter(values.values())))
    width = n // height
    end = ">" if bigendian else "<"
    step = point_step or max(off + np.dtype(FIELD_TYPES[dt]).itemsize for _, off, dt in specs)
    dtype = np.dtype(
        {
            "names": [s[0] for s in specs],
            "formats": [end + FIELD_TYPES[s[2]] for s in specs],
            "offsets": [s[1] for s in specs],
            "itemsize": step,
        }
    )
    rec = np.zeros(n, dtype)
    for name, v in values.items():
        rec[name] = v
    rows = rec.tobytes()
    row_bytes = width * step
    data = b"".join(
        rows[r * row_bytes : (r + 1) * row_bytes] + b"\xab" * row_pad for r in range(height)
    )  # padding bytes are garbage, not zeros
    fields = [NS(name=nm, offset=off, datatype=dt, count=1) for nm, off, dt in specs]
    return NS(
        header=NS(stamp=NS(sec=1, nanosec=2), frame_id="lidar"), height=height, width=width, fields=fields,
        is_bigendian=bigendian, point_step=step, row_step=row_bytes + row_pad, data=container(data), is_dense=dense,
    )


def rng_points(n, seed=0):
    rng = np.random.default_rng(seed)
    pts = rng.uniform(-50, 50, (n, 4)).astype(np.float32)
    pts[:, 3] = rng.integers(0, 256, n)
    return pts


# ------------------------------------------------------------------------------------------- PointCloud2
@pytest.mark.parametrize("container", list(DATA_CONTAINERS))
def test_shuffled_fields_with_padding_any_data_container(container):
    pts = rng_points(50)
    # intensity first, then z, a gap, x, y; point_step 32 with unused trailing bytes
    specs = [("intensity", 0, 7), ("z", 4, 7), ("ring", 8, 4), ("x", 16, 7), ("y", 20, 7)]
    cloud = duck_cloud(
        specs, {"x": pts[:, 0], "y": pts[:, 1], "z": pts[:, 2], "intensity": pts[:, 3], "ring": np.arange(50)},
        point_step=32, container=DATA_CONTAINERS[container],
    )
    out = pointcloud2_to_points(cloud)
    assert out.dtype == np.float32 and out.shape == (50, 4)
    np.testing.assert_array_equal(out, pts)
    np.testing.assert_array_equal(pointcloud2_fields(cloud)["ring"], np.arange(50))


def test_float64_xyz_and_intensity_names():
    rng = np.random.default_rng(1)
    xyz = rng.normal(0, 30, (20, 3))
    for name in ("intensity", "i", "reflectivity"):
        specs = [("x", 0, 8), ("y", 8, 8), ("z", 16, 8), (name, 24, 4)]
        cloud = duck_cloud(specs, {"x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2], name: np.arange(20) * 1000})
        out = pointcloud2_to_points(cloud)
        np.testing.assert_array_equal(out[:, :3], xyz.astype(np.float32))
        np.testing.assert_array_equal(out[:, 3], np.arange(20) * 1000.0)  # uint16, not rescaled
    # no intensity field at all -> 0
    cloud = duck_cloud([("x", 0, 8), ("y", 8, 8), ("z", 16, 8)], {"x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2]})
    out = pointcloud2_to_points(cloud)
    assert out.shape == (20, 4) and not out[:, 3].any()
    np.testing.assert_array_equal(out[:, 2], xyz[:, 2].astype(np.float32))


@pytest.mark.parametrize("bigendian", [False, True])
@pytest.mark.parametrize("datatype", list(FIELD_TYPES))
def test_every_datatype_both_endians(datatype, bigendian):
    vals = np.array([0, 1, 7, 100, 125, 3], np.float64)  # +2 still fits in every type
    if datatype in (1, 3, 5, 7, 8):
        vals[0] = -5
    size = np.dtype(FIELD_TYPES[datatype]).itemsize
    specs = [("y", 0, datatype), ("x", size, datatype), ("intensity", 2 * size, datatype), ("z", 3 * size, datatype)]
    cloud = duck_cloud(specs, {"x": vals, "y": vals + 1, "z": vals[::-1], "intensity": vals + 2}, bigendian=bigendian)
    out = pointcloud2_to_points(cloud)
    np.testing.assert_array_equal(out, np.stack([vals, vals + 1, vals[::-1], vals + 2], 1).astype(np.float32))


def test_field_with_count_reads_first_element():
    pts = rng_points(6, seed=9)
    rec = np.zeros(6, [("x", "<f4", (2,)), ("y", "<f4"), ("z", "<f4"), ("intensity", "u1", (3,))])
    rec["x"][:, 0], rec["x"][:, 1] = pts[:, 0], 999.0
    rec["y"], rec["z"], rec["intensity"][:, 0] = pts[:, 1], pts[:, 2], pts[:, 3]
    fields = [NS(name="x", offset=0, datatype=7, count=2), NS(name="y", offset=8, datatype=7, count=1),
              NS(name="z", offset=12, datatype=7, count=1), NS(name="intensity", offset=16, datatype=2, count=3)]
    cloud = NS(height=1, width=6, fields=fields, is_bigendian=False, point_step=19, row_step=6 * 19,
               data=rec.tobytes(), is_dense=True)
    np.testing.assert_array_equal(pointcloud2_to_points(cloud), pts)
    cloud.point_step, cloud.row_step = 18, 6 * 18  # intensity (3 bytes at 16) no longer fits
    with pytest.raises(MessageError, match=r"end of field 'intensity' \(offset 16, 3 bytes\)"):
        pointcloud2_to_points(cloud)


def test_big_endian_cloud_bytes_built_with_gt_f4():
    pts = rng_points(10, seed=3)
    raw = pts.astype(">f4").tobytes()
    fields = [NS(name=k, offset=4 * i, datatype=7, count=1) for i, k in enumerate("x y z intensity".split())]
    cloud = NS(height=1, width=10, fields=fields, is_bigendian=True, point_step=16, row_step=160, data=raw,
               is_dense=True)
    np.testing.assert_array_equal(pointcloud2_to_points(cloud), pts)
    cloud.is_bigendian = False  # same bytes read as little endian: garbage, proves the flag is honoured
    assert not np.array_equal(pointcloud2_to_points_with_stats(cloud)[0][:3], pts[:3])


def test_organised_cloud_with_row_padding():
    pts = rng_points(4 * 6, seed=4)  # height 4, width 6, row-major
    specs = [("x", 0, 7), ("y", 4, 7), ("z", 8, 7), ("intensity", 12, 2)]
    cloud = duck_cloud(
        specs, {"x": pts[:, 0], "y": pts[:, 1], "z": pts[:, 2], "intensity": pts[:, 3]}, height=4, row_pad=12,
        point_step=16,
    )
    assert cloud.row_step == 6 * 16 + 12
    out = pointcloud2_to_points(cloud)
    np.testing.assert_array_equal(out, pts)


def test_non_dense_cloud_drops_nan_rows_and_counts_them():
    pts = rng_points(30, seed=5)
    pts[[2, 7, 8], 0] = np.nan
    pts[11, 2] = np.inf
    pts[20, 3] = np.nan  # a NaN intensity also makes the point unusable
    specs = [("x", 0, 7), ("y", 4, 7), ("z", 8, 7), ("intensity", 12, 7)]
    cloud = duck_cloud(specs, {k: pts[:, i] for i, k in enumerate(["x", "y", "z", "intensity"])}, height=5,
                       dense=False)
    out, dropped = pointcloud2_to_points_with_stats(cloud)
    assert dropped == 5
    keep = np.setdiff1d(np.arange(30), [2, 7, 8, 11, 20])
    np.testing.assert_array_equal(out, pts[keep])
    np.testing.assert_array_equal(pointcloud2_to_points(cloud), pts[keep])


@pytest.mark.parametrize("container", list(DATA_CONTAINERS))
def test_empty_cloud(container):
    fields = [NS(name=k, offset=4 * i, datatype=7, count=1) for i, k in enumerate("xyz")]
    cloud = NS(height=1, width=0, fields=fields, is_bigendian=False, point_step=12, row_step=0,
               data=DATA_CONTAINERS[container](b""), is_dense=True)
    out, dropped = pointcloud2_to_points_with_stats(cloud)
    assert out.shape == (0, 4) and out.dtype == np.float32 and dropped == 0
    cloud.height = 0  # an organised cloud with no rows
    assert pointcloud2_to_points(cloud).shape == (0, 4)


def test_pointcloud_errors_name_the_problem():
    pts = rng_points(4)
    good = [("x", 0, 7), ("y", 4, 7), ("z", 8, 7), ("intensity", 12, 7)]
    vals = {k: pts[:, i] for i, k in enumerate(["x", "y", "z", "intensity"])}

    cloud = duck_cloud([("a", 0, 7), ("b", 4, 7), ("z", 8, 7)], {"a": pts[:, 0], "b": pts[:, 1], "z": pts[:, 2]})
    with pytest.raises(MessageError, match=r"PointCloud2: no field 'x' \(fields: \['a', 'b', 'z'\]\)") as e:
        pointcloud2_to_points(cloud)
    assert e.value.kind == "pointcloud_no_xyz" and isinstance(e.value, ValueError)

    cloud = duck_cloud(good, vals)
    cloud.point_step = 12  # intensity at 12..16 no longer fits
    with pytest.raises(MessageError, match=r"point_step 12 < end of field 'intensity' \(offset 12, 4 bytes\)") as e:
        pointcloud2_to_points(cloud)
    assert e.value.kind == "pointcloud_layout"

    cloud = duck_cloud(good, vals)
    cloud.data = cloud.data[:-1]
    with pytest.raises(MessageError, match=r"data has 63 bytes < row_step 64 \* height 1") as e:
        pointcloud2_to_points(cloud)
    assert e.value.kind == "pointcloud_layout"

    cloud = duck_cloud(good, vals)
    cloud.row_step = 60
    with pytest.raises(MessageError, match="row_step 60 < width 4") as e:
        pointcloud2_to_points(cloud)
    assert e.value.kind == "pointcloud_layout"

    cloud = duck_cloud(good, vals)
    cloud.fields[0].datatype = 9
    with pytest.raises(MessageError, match="field 'x' has unknown datatype 9") as e:
        pointcloud2_to_points(cloud)
    assert e.value.kind == "pointcloud_layout"

    cloud = duck_cloud(good, vals)
    cloud.data = [0, 1, 300] + [0] * 61  # a list that is not bytes
    with pytest.raises(MessageError, match="not a sequence of bytes"):
        pointcloud2_to_points(cloud)


def test_points_to_pointcloud2_rclpy_and_rosbags_agree():
    from sensor_msgs.msg import PointCloud2, PointField

    pts = np.concatenate([rng_points(1000, seed=6), np.full((1000, 1), 0.05, np.float32)], 1)
    msg = points_to_pointcloud2(pts, make_header(1_700_000_000_123_456_789, "LIDAR_TOP"))
    assert isinstance(msg, PointCloud2) and isinstance(msg.data, array.array)
    assert [f.name for f in msg.fields] == ["x", "y", "z", "intensity", "time"]
    assert all(f.datatype == PointField.FLOAT32 for f in msg.fields)
    assert (msg.height, msg.width, msg.point_step, msg.row_step) == (1, 1000, 20, 20000)
    assert msg.is_dense and not msg.is_bigendian
    bag = via_rosbags(msg, "sensor_msgs/msg/PointCloud2")
    assert isinstance(bag.data, np.ndarray)
    a, b = pointcloud2_to_points(msg), pointcloud2_to_points(bag)
    np.testing.assert_array_equal(a, pts[:, :4])
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(pointcloud2_fields(bag)["time"], pts[:, 4])
    assert stamp_to_ns(bag.header.stamp) == stamp_to_ns(msg.header.stamp) == 1_700_000_000_123_456_789
    assert bag.header.frame_id == "LIDAR_TOP"


def test_make_pointcloud2_mixed_dtypes_round_trip():
    n = 37
    cols = {
        "x": np.linspace(-1, 1, n).astype(np.float32),
        "label": (np.arange(n) % 18).astype(np.uint8),  # 1 byte: later fields are unaligned
        "y": np.linspace(2, 3, n).astype(np.float64),
        "z": np.full(n, 0.5, np.float32),
        "reflectivity": (np.arange(n) * 1000).astype(np.uint16),
        "ring": (np.arange(n) - 10).astype(np.int32),
    }
    msg = make_pointcloud2(make_header(5, "lidar"), cols)
    assert [(f.name, f.offset, f.datatype) for f in msg.fields] == [
        ("x", 0, 7), ("label", 4, 2), ("y", 5, 8), ("z", 13, 7), ("reflectivity", 17, 4), ("ring", 19, 5)
    ]
    assert msg.point_step == 23
    for m in (msg, via_rosbags(msg, "sensor_msgs/msg/PointCloud2")):
        back = pointcloud2_fields(m)
        for k, v in cols.items():
            np.testing.assert_array_equal(back[k], v)
            assert back[k].dtype == v.dtype
        out = pointcloud2_to_points(m)
        np.testing.assert_array_equal(out[:, 1], cols["y"].astype(np.float32))
        np.testing.assert_array_equal(out[:, 3], cols["reflectivity"].astype(np.float32))
    with pytest.raises(ValueError, match="column 'bad' has unsupported dtype int64"):
        make_pointcloud2(make_header(0, "l"), {"x": np.zeros(3, np.float32), "bad": np.zeros(3, np.int64)})
    with pytest.raises(ValueError, match="column 'y' has 2 values, expected 3"):
        make_pointcloud2(make_header(0, "l"), {"x": np.zeros(3, np.float32), "y": np.zeros(2, np.float32)})


def test_mcap_decoded_cloud_reads_the_same():
    """A rosbag2-style MCAP (CDR payload, ros2msg schema) decoded by mcap-ros2-support: ``data`` is bytes."""
    from mcap.reader import make_reader
    from mcap.writer import Writer
    from mcap_ros2.decoder import DecoderFactory
    from rclpy.serialization import serialize_message

    pts = rng_points(200, seed=7)
    msg = points_to_pointcloud2(pts, make_header(42, "LIDAR_TOP"))
    msgdef = _typestore().generate_msgdef("sensor_msgs/msg/PointCloud2", ros_version=2)[0]
    buf = io.BytesIO()
    writer = Writer(buf)
    writer.start(profile="ros2")
    schema = writer.register_schema("sensor_msgs/msg/PointCloud2", "ros2msg", msgdef.encode())
    channel = writer.register_channel("/LIDAR_TOP", "cdr", schema)
    writer.add_message(channel, log_time=42, data=serialize_message(msg), publish_time=42)
    writer.finish()
    buf.seek(0)
    reader = make_reader(buf, decoder_factories=[DecoderFactory()])
    decoded = [m for _, _, _, m in reader.iter_decoded_messages()]
    assert len(decoded) == 1
    np.testing.assert_array_equal(pointcloud2_to_points(decoded[0]), pts)
    assert stamp_to_ns(decoded[0].header.stamp) == 42


def test_real_nuscenes_lidar_round_trip(real_dir):
    from perception.data.io import load_points

    path = next((real_dir / "mmdetection3d/tests/data/nuscenes/samples/LIDAR_TOP").glob(LIDAR_FILE))
    pts = load_points(path)
    assert pts.shape[1] == 5 and len(pts) > 0
    msg = points_to_pointcloud2(pts[:, :4], make_header(1533201470948018000, "LIDAR_TOP"))
    for m in (msg, via_rosbags(msg, "sensor_msgs/msg/PointCloud2")):
        out, dropped = pointcloud2_to_points_with_stats(m)
        assert dropped == 0
        np.testing.assert_array_equal(out, pts[:, :4])


def test_pointcloud_reader_is_fast():
    pts = rng_points(35000, seed=8)
    msg = points_to_pointcloud2(np.concatenate([pts, np.zeros((35000, 1), np.float32)], 1), make_header(0, "l"))
    pointcloud2_to_points(msg)
    t0 = time.perf_counter()
    for _ in range(20):
        pointcloud2_to_points(msg)
    per_call = (time.perf_counter() - t0) / 20
    assert per_call < 0.01, f"{per_call * 1e3:.2f} ms per 35k-point cloud"  # ~0.5 ms; a Python loop is ~100x


# ------------------------------------------------------------------------------------------- images
ENCODINGS = {"rgb8": (3, [0, 1, 2]), "bgr8": (3, [2, 1, 0]), "rgba8": (4, [0, 1, 2]), "bgra8": (4, [2, 1, 0])}


def _rgb(h=5, w=7, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _padded_image(pixels, encoding, pad, container=bytes):
    h, w, c = pixels.shape
    rows = np.concatenate([pixels.reshape(h, w * c), np.full((h, pad), 0xEE, np.uint8)], axis=1)
    return NS(height=h, width=w, encoding=encoding, is_bigendian=0, step=w * c + pad,
              data=container(rows.tobytes()))


@pytest.mark.parametrize("encoding", list(ENCODINGS))
@pytest.mark.parametrize("container", ["bytes", "array", "numpy"])
def test_image_encodings_with_row_padding(encoding, container):
    rgb = _rgb()
    channels, order = ENCODINGS[encoding]
    pixels = np.zeros(rgb.shape[:2] + (channels,), np.uint8)
    pixels[..., order] = rgb
    if channels == 4:
        pixels[..., 3] = 77
    out = image_to_rgb(_padded_image(pixels, encoding, pad=5, container=DATA_CONTAINERS[container]))
    assert out.shape == (5, 7, 3) and out.dtype == np.uint8 and out.flags.c_contiguous
    np.testing.assert_array_equal(out, rgb)


def test_mono8_gives_three_equal_channels():
    gray = _rgb()[..., :1]
    out = image_to_rgb(_padded_image(gray, "mono8", pad=3))
    assert out.shape == (5, 7, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], gray[..., 0])


def test_bgr_is_swapped():
    pixel = np.array([[[10, 20, 30]]], np.uint8)
    np.testing.assert_array_equal(image_to_rgb(_padded_image(pixel, "bgr8", 0))[0, 0], [30, 20, 10])
    np.testing.assert_array_equal(image_to_rgb(_padded_image(pixel, "rgb8", 0))[0, 0], [10, 20, 30])


def test_image_errors():
    msg = _padded_image(_rgb(), "rgb8", pad=2)
    msg.data = msg.data[:-1]
    with pytest.raises(MessageError, match=r"Image: data has 114 bytes < step 23 \* height 5") as e:
        image_to_rgb(msg)
    assert e.value.kind == "image_size"
    msg = _padded_image(_rgb(), "rgb8", pad=0)
    msg.width = 8  # step 21 < 8 * 3
    with pytest.raises(MessageError, match=r"step 21 < width 8 \* 3 channels") as e:
        image_to_rgb(msg)
    assert e.value.kind == "image_size"
    msg = _padded_image(_rgb(), "rgb8", pad=0)
    msg.encoding = "yuv422"
    with pytest.raises(MessageError, match="Image: unknown encoding 'yuv422'") as e:
        image_to_rgb(msg)
    assert e.value.kind == "image_encoding"


def test_rgb_to_image_round_trip_through_rosbags():
    from sensor_msgs.msg import Image

    rgb = _rgb(9, 11, seed=2)
    msg = rgb_to_image(rgb, make_header(7, "CAM_FRONT"))
    assert isinstance(msg, Image) and msg.encoding == "rgb8" and msg.step == 33
    np.testing.assert_array_equal(image_to_rgb(msg), rgb)
    np.testing.assert_array_equal(image_to_rgb(via_rosbags(msg, "sensor_msgs/msg/Image")), rgb)


def test_real_jpeg_passes_through_unchanged(real_dir):
    from sensor_msgs.msg import CompressedImage

    from perception.data.io import load_image

    path = next((real_dir / "mmdetection3d/tests/data/nuscenes/samples/CAM_BACK_LEFT").glob(JPEG_FILE))
    raw = path.read_bytes()
    msg = jpeg_bytes_to_compressed(raw, make_header(1531883530447423000, "CAM_BACK_LEFT"))
    assert isinstance(msg, CompressedImage) and msg.format == "jpeg"
    assert bytes(msg.data) == raw  # not re-encoded
    expected = load_image(path)
    np.testing.assert_array_equal(compressed_to_rgb(msg), expected)
    bag = via_rosbags(msg, "sensor_msgs/msg/CompressedImage")
    np.testing.assert_array_equal(compressed_to_rgb(bag), expected)
    with pytest.raises(ValueError, match="JPEG SOI"):
        jpeg_bytes_to_compressed(b"\x89PNG....", make_header(0, "c"))


def test_compressed_round_trip_and_formats():
    from PIL import Image as PILImage

    rgb = np.zeros((32, 48, 3), np.uint8)
    rgb[:, :24] = (200, 30, 40)  # smooth blocks: JPEG keeps them close
    rgb[:, 24:] = (20, 180, 60)
    msg = rgb_to_compressed(rgb, make_header(1, "CAM_FRONT"), quality=95)
    assert msg.format == "jpeg" and bytes(msg.data[:2]) == b"\xff\xd8"
    out = compressed_to_rgb(msg)
    assert out.shape == rgb.shape and np.abs(out.astype(int) - rgb).mean() < 3
    # a PNG with image_transport's format string: lossless
    buf = io.BytesIO()
    PILImage.fromarray(_rgb(6, 4)).save(buf, format="PNG")
    png = NS(format="rgb8; png compressed rgb8", data=np.frombuffer(buf.getvalue(), np.uint8))
    np.testing.assert_array_equal(compressed_to_rgb(png), _rgb(6, 4))
    # grayscale JPEG -> three equal channels
    buf = io.BytesIO()
    PILImage.fromarray(np.full((8, 8), 128, np.uint8), "L").save(buf, format="JPEG")
    gray = compressed_to_rgb(NS(format="jpeg", data=buf.getvalue()))
    assert gray.shape == (8, 8, 3) and (gray[..., 0] == gray[..., 2]).all()


@pytest.mark.parametrize("data", [b"", b"\xff\xd8\xff\xe0garbage", "truncated"])
def test_corrupt_compressed_image(data):
    if data == "truncated":
        data = bytes(rgb_to_compressed(_rgb(64, 64), make_header(0, "c")).data)[:300]
    with pytest.raises(MessageError, match="CompressedImage: ") as e:
        compressed_to_rgb(NS(format="jpeg", data=data))
    assert e.value.kind == "image_decode"
    with pytest.raises(MessageError) as e:
        compressed_to_rgb(NS(format="16UC1; compressedDepth", data=b"\x00" * 20))
    assert e.value.kind == "image_encoding"


def test_camera_info_round_trip_and_errors():
    from sensor_msgs.msg import CameraInfo

    K = np.array([[1266.4, 0.0, 816.3], [0.0, 1266.4, 491.5], [0.0, 0.0, 1.0]])
    msg = intrinsics_to_camera_info(K, 1600, 900, make_header(3, "CAM_FRONT"))
    assert isinstance(msg, CameraInfo) and msg.distortion_model == "plumb_bob"
    np.testing.assert_array_equal(np.asarray(msg.p).reshape(3, 4), np.concatenate([K, np.zeros((3, 1))], 1))
    np.testing.assert_array_equal(np.asarray(msg.r).reshape(3, 3), np.eye(3))
    assert list(msg.d) == [0.0] * 5
    plain = NS(k=K.reshape(-1).tolist(), width=1600, height=900)
    for m in (msg, via_rosbags(msg, "sensor_msgs/msg/CameraInfo"), plain):
        K2, size = camera_info_to_intrinsics(m)
        assert K2.dtype == np.float64 and K2.shape == (3, 3) and size == (1600, 900)
        np.testing.assert_array_equal(K2, K)

    bad = {
        "is all zero": np.zeros(9),
        "is not finite": np.r_[K.reshape(-1)[:8], np.nan],
        r"has fx=-1\.0": np.r_[-1.0, K.reshape(-1)[1:]],
        r"last row is \[0\.0, 0\.0, 2\.0\]": np.r_[K.reshape(-1)[:8], 2.0],
        "has 6 values": K.reshape(-1)[:6],
    }
    for text, k in bad.items():
        with pytest.raises(MessageError, match="CameraInfo: K " + text) as e:
            camera_info_to_intrinsics(NS(k=k, width=1600, height=900))
        assert e.value.kind == "camera_info_k"
    with pytest.raises(MessageError) as e:
        camera_info_to_intrinsics(NS(k=K.reshape(-1), width=0, height=900))
    assert e.value.kind == "camera_info_size"


# ------------------------------------------------------------------------------------------- stamps, transforms
def test_stamps():
    for ns in (0, 1, 999_999_999, 1_533_201_470_948_018_000, -1, -1_500_000_000):
        st = ns_to_stamp(ns)
        assert 0 <= st.nanosec < 1_000_000_000
        assert stamp_to_ns(st) == ns
    h = make_header(2_000_000_005, "base_link")
    assert (h.stamp.sec, h.stamp.nanosec, h.frame_id) == (2, 5, "base_link")
    assert stamp_to_ns(NS(sec=3, nanosec=4)) == 3_000_000_004
    with pytest.raises(MessageError, match="nanosec 1000000000"):
        stamp_to_ns(NS(sec=0, nanosec=1_000_000_000))


def _random_rigid(rng):
    q = rng.normal(size=4)
    return matrix_from_pose(rng.normal(0, 5, 3), q)


def test_pose_matrix_round_trip():
    rng = np.random.default_rng(0)
    for _ in range(50):
        T = _random_rigid(rng)
        np.testing.assert_allclose(T[:3, :3] @ T[:3, :3].T, np.eye(3), atol=1e-12)
        t, q = pose_from_matrix(T)
        assert q[3] >= 0 and abs(np.linalg.norm(q) - 1) < 1e-12
        np.testing.assert_allclose(matrix_from_pose(t, q), T, atol=1e-12)
    # 180 degrees about x (trace = -1): the stable branch
    t, q = pose_from_matrix(np.diag([1.0, -1.0, -1.0, 1.0]))
    np.testing.assert_allclose(np.abs(q), [1, 0, 0, 0], atol=1e-12)
    # yaw 90 deg: x axis -> y axis
    T = matrix_from_pose([1, 2, 3], [0, 0, np.sin(np.pi / 4), np.cos(np.pi / 4)])
    np.testing.assert_allclose(T @ [1, 0, 0, 1], [1, 3, 3, 1], atol=1e-12)
    np.testing.assert_allclose(matrix_from_pose([0, 0, 0], [0, 0, 0, 2.0]), np.eye(4))  # normalised
    with pytest.raises(ValueError, match="zero norm"):
        matrix_from_pose([0, 0, 0], [0, 0, 0, 0])
    with pytest.raises(ValueError, match="proper rotation"):
        pose_from_matrix(np.diag([1.0, 1.0, -1.0, 1.0]))


def test_odometry_and_transform():
    rng = np.random.default_rng(1)
    T = _random_rigid(rng)
    odom = matrix_to_odometry(T, 1_234_000_000_001, "odom", "base_link")
    assert odom.header.frame_id == "odom" and odom.child_frame_id == "base_link"
    for m in (odom, via_rosbags(odom, "nav_msgs/msg/Odometry")):
        stamp, T2 = odometry_to_matrix(m)
        assert stamp == 1_234_000_000_001
        np.testing.assert_allclose(T2, T, atol=1e-12)
    ts = matrix_to_transform_stamped(T, 5, "base_link", "LIDAR_TOP")
    np.testing.assert_allclose(transform_to_matrix(ts), T, atol=1e-12)
    np.testing.assert_allclose(transform_to_matrix(ts.transform), T, atol=1e-12)
    bad = NS(translation=NS(x=0, y=0, z=0), rotation=NS(x=0, y=0, z=0, w=0))
    with pytest.raises(MessageError, match="Transform: quaternion") as e:
        transform_to_matrix(bad)
    assert e.value.kind == "transform"


# ------------------------------------------------------------------------------------------- outputs
def _pred(boxes, scores, labels, bev=None, occ=None):
    from perception.runtime.predictor import Prediction

    labels = np.asarray(labels, np.int64)
    return Prediction(
        boxes=np.asarray(boxes, np.float32).reshape(-1, 9), scores=np.asarray(scores, np.float32), labels=labels,
        class_names=[DETECTION_CLASSES[i] for i in labels], bev_probs=bev, occ_labels=occ,
    )


def test_boxes_to_markers():
    from visualization_msgs.msg import Marker

    from perception.viz.colors import DETECTION_COLORS

    yaw = 0.7
    pred = _pred(
        [
            [10.0, -5.0, 1.0, 4.5, 1.9, 1.6, yaw, 3.0, 4.0],  # car, moving 5 m/s
            [2.0, 3.0, 0.5, 0.6, 0.6, 1.8, 0.0, 0.1, 0.0],  # pedestrian, 0.1 m/s: no arrow
            [0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0, np.nan, np.nan],  # barrier, NaN velocity: no arrow
            [5.0, 5.0, 0.0, 1.0, 1.0, 1.0, 0.0, 9.0, 0.0],  # below the threshold: dropped
        ],
        [0.9, 0.5, 0.4, 0.1],
        [0, 8, 5, 1],
    )
    arr = boxes_to_markers(pred, make_header(9, "LIDAR_TOP"), score_threshold=0.3)
    ms = arr.markers
    assert ms[0].action == Marker.DELETEALL
    by_ns = {ns: [m for m in ms[1:] if m.ns == ns] for ns in ("boxes", "labels", "velocity")}
    assert [len(v) for v in by_ns.values()] == [3, 3, 1]
    assert len(ms) == 8
    assert len({m.id for m in ms}) == len(ms)
    cube = by_ns["boxes"][0]
    assert cube.type == Marker.CUBE and cube.header.frame_id == "LIDAR_TOP"
    assert (cube.pose.position.x, cube.pose.position.y, cube.pose.position.z) == (10.0, -5.0, 1.0)
    q = cube.pose.orientation
    np.testing.assert_allclose([q.x, q.y, q.z, q.w], [0, 0, np.sin(yaw / 2), np.cos(yaw / 2)], atol=1e-6)
    np.testing.assert_allclose([cube.scale.x, cube.scale.y, cube.scale.z], [4.5, 1.9, 1.6], atol=1e-6)
    np.testing.assert_allclose([cube.color.r, cube.color.g, cube.color.b], DETECTION_COLORS[0])
    texts = [m.text for m in by_ns["labels"]]
    assert texts == ["car 0.90", "pedestrian 0.50", "barrier 0.40"]
    assert all(m.type == Marker.TEXT_VIEW_FACING for m in by_ns["labels"])
    arrow = by_ns["velocity"][0]
    assert arrow.type == Marker.ARROW
    p0, p1 = arrow.points
    np.testing.assert_allclose([p1.x - p0.x, p1.y - p0.y], [3.0, 4.0], atol=1e-6)
    # nothing above the threshold: only the DELETEALL
    assert len(boxes_to_markers(pred, make_header(9, "LIDAR_TOP"), score_threshold=0.95).markers) == 1


def test_detection3d_array_none_without_vision_msgs_and_filled_with_it(monkeypatch):
    pred = _pred([[1.0, 2.0, 3.0, 4.0, 2.0, 1.5, 0.3, 0, 0], [0] * 9], [0.8, 0.05], [3, 0])
    header = make_header(1, "LIDAR_TOP")
    try:
        import vision_msgs  # noqa: F401

        has_vision = True
    except ImportError:
        has_vision = False
    if not has_vision:
        assert boxes_to_detection3d_array(pred, header, 0.1) is None

    # a stand-in vision_msgs (Humble layout) to check what is filled in
    def msg_class(**defaults):
        def init(self, **kw):
            for k, v in defaults.items():
                setattr(self, k, v() if callable(v) else v)
            for k, v in kw.items():
                setattr(self, k, v)

        return type("Msg", (), {"__init__": init})

    def pose():
        return NS(position=NS(x=0.0, y=0.0, z=0.0), orientation=NS(x=0.0, y=0.0, z=0.0, w=1.0))

    fake = types.ModuleType("vision_msgs.msg")
    fake.ObjectHypothesisWithPose = msg_class(
        hypothesis=lambda: NS(class_id="", score=0.0), pose=lambda: NS(pose=pose())
    )
    fake.BoundingBox3D = msg_class(center=pose, size=lambda: NS(x=0.0, y=0.0, z=0.0))
    fake.Detection3D = msg_class(header=None, results=list, bbox=None, id="")
    fake.Detection3DArray = msg_class(header=None, detections=list)
    pkg = types.ModuleType("vision_msgs")
    pkg.msg = fake
    monkeypatch.setitem(sys.modules, "vision_msgs", pkg)
    monkeypatch.setitem(sys.modules, "vision_msgs.msg", fake)
    arr = boxes_to_detection3d_array(pred, header, 0.1)
    assert len(arr.detections) == 1
    det = arr.detections[0]
    assert det.results[0].hypothesis.class_id == "bus"
    assert det.results[0].hypothesis.score == pytest.approx(0.8)
    assert (det.bbox.center.position.x, det.bbox.center.position.y, det.bbox.center.position.z) == (1.0, 2.0, 3.0)
    assert det.bbox.center.orientation.z == pytest.approx(np.sin(0.15))
    assert (det.bbox.size.x, det.bbox.size.y, det.bbox.size.z) == (4.0, 2.0, 1.5)


def test_bev_grids_orientation():
    from nav_msgs.msg import OccupancyGrid

    bev = np.zeros((len(BEV_MAP_CLASSES),) + BEV_MAP_GRID.shape, np.float32)
    ix, iy = 150, 20  # asymmetric: x ahead-right of centre, y far negative
    bev[2, ix, iy] = 0.874
    bev[2, 10, 190] = 0.5
    bev[0, 0, 0] = np.nan
    grids = bev_to_occupancy_grids(bev, make_header(11, "LIDAR_TOP"))
    assert [name for name, _ in grids] == list(BEV_MAP_CLASSES)
    name, grid = grids[2]
    assert name == "walkway" and isinstance(grid, OccupancyGrid)
    info = grid.info
    assert (info.width, info.height, info.resolution) == (200, 200, 0.5)
    assert (info.origin.position.x, info.origin.position.y, info.origin.position.z) == (-50.0, -50.0, 0.0)
    assert info.origin.orientation.w == 1.0
    data = np.asarray(grid.data, np.int8)
    assert data.shape == (200 * 200,)
    hot = np.flatnonzero(data == 87)
    assert hot.tolist() == [iy * info.width + ix]
    col, row = hot[0] % info.width, hot[0] // info.width  # ROS: cell (col, row) covers origin + (col, row) * res
    x = info.origin.position.x + (col + 0.5) * info.resolution
    y = info.origin.position.y + (row + 0.5) * info.resolution
    assert (x, y) == (BEV_MAP_GRID.centers(0)[ix], BEV_MAP_GRID.centers(1)[iy]) == (25.25, -39.75)
    assert data[190 * 200 + 10] == 50 and np.count_nonzero(data) == 2
    assert np.asarray(grids[0][1].data)[0] == -1  # NaN -> unknown
    assert np.count_nonzero(np.asarray(grids[1][1].data)) == 0
    with pytest.raises(ValueError, match="bev_probs must be"):
        bev_to_occupancy_grids(bev[:, :100], make_header(0, "l"))


def test_occupancy_outputs():
    from visualization_msgs.msg import Marker

    occ = np.full(OCC3D_GRID.shape, OCC3D_FREE, np.uint8)
    occ[10, 150, 3] = 4  # car
    occ[199, 0, 15] = 16  # vegetation
    header = make_header(5, "base_link")
    cloud = occupancy_to_pointcloud2(occ, OCC3D_GRID, OCC3D_FREE, header)
    assert [f.name for f in cloud.fields] == ["x", "y", "z", "label"]
    fields = pointcloud2_fields(via_rosbags(cloud, "sensor_msgs/msg/PointCloud2"))
    got = sorted(zip(fields["label"].tolist(), fields["x"], fields["y"], fields["z"], strict=True))
    c = OCC3D_GRID.centers
    want = [(4, c(0)[10], c(1)[150], c(2)[3]), (16, c(0)[199], c(1)[0], c(2)[15])]
    assert [g[0] for g in got] == [w[0] for w in want]
    np.testing.assert_allclose([g[1:] for g in got], [w[1:] for w in want], atol=1e-5)
    np.testing.assert_allclose(want[0][1:], (-35.8, 20.2, 0.4), atol=1e-9)

    arr = occupancy_to_markers(occ, OCC3D_GRID, OCC3D_FREE, header)
    (m,) = arr.markers
    assert m.type == Marker.CUBE_LIST and m.action == Marker.ADD and len(m.points) == len(m.colors) == 2
    assert (m.scale.x, m.scale.y, m.scale.z) == pytest.approx((0.4, 0.4, 0.4))
    assert {(round(p.x, 3), round(p.y, 3), round(p.z, 3)) for p in m.points} == {
        (-35.8, 20.2, 0.4), (39.8, -39.8, 5.2)}
    assert len({(col.r, col.g, col.b) for col in m.colors}) == 2
    empty = occupancy_to_markers(np.full(OCC3D_GRID.shape, OCC3D_FREE, np.uint8), OCC3D_GRID, OCC3D_FREE, header)
    assert empty.markers[0].action == Marker.DELETE
    small = GridSpec(lower=(0.0, 0.0, 0.0), upper=(1.0, 1.0, 1.0), size=(0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match="grid is"):
        occupancy_to_pointcloud2(occ, small, OCC3D_FREE, header)


def test_diagnostics():
    from diagnostic_msgs.msg import DiagnosticStatus

    msg = diagnostics_message(
        1_000_000_007, "m3_perception",
        [
            {"name": "lidar", "level": "OK", "message": "fine", "values": {"points": 34000, "rate_hz": 19.9}},
            {"name": "CAM_FRONT", "level": "WARN", "message": "late", "values": {}},
            {"name": "model", "level": "ERROR", "message": "nan"},
            {"name": "CAM_BACK", "level": "STALE", "message": "no data", "values": {"age_s": None}},
        ],
    )
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (1, 7)
    levels = [s.level for s in msg.status]
    assert levels == [DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR, DiagnosticStatus.STALE]
    assert msg.status[0].name == "m3_perception: lidar"
    assert [(kv.key, kv.value) for kv in msg.status[0].values] == [("points", "34000"), ("rate_hz", "19.9")]
    assert msg.status[3].values[0].value == "None"
    with pytest.raises(ValueError, match="unknown level 'FATAL'"):
        diagnostics_message(0, "n", [{"name": "x", "level": "FATAL", "message": ""}])


def test_voxel_centres_fast_path_equals_the_reference():
    """The numba pass of the node's occupancy output against the numpy reference (same signature)."""
    from perception.constants import OCC3D_GRID, OPENOCC_GRID
    from perception.ros.outputs import voxel_centres, voxel_centres_reference

    rng = np.random.default_rng(3)
    for grid, free in ((OCC3D_GRID, 17), (OPENOCC_GRID, 0)):
        for fraction in (0.0, 0.07, 1.0):
            occ = np.where(rng.random(grid.shape) < fraction, rng.integers(0, 18, grid.shape), free).astype(np.uint8)
            centres, labels = voxel_centres(occ, grid, free)
            ref_centres, ref_labels = voxel_centres_reference(occ, grid, free)
            assert centres.dtype == np.float32 and labels.dtype == np.uint8 and len(labels) == (occ != free).sum()
            np.testing.assert_array_equal(centres, ref_centres)
            np.testing.assert_array_equal(labels, ref_labels)
    with pytest.raises(ValueError, match="the grid is"):
        voxel_centres(np.zeros((2, 2, 2), np.uint8), OCC3D_GRID, 17)
