"""Model outputs (:class:`perception.runtime.Prediction`) -> ROS 2 messages.

- boxes: ``visualization_msgs/MarkerArray`` (:func:`boxes_to_markers`) and ``vision_msgs/Detection3DArray``
  (:func:`boxes_to_detection3d_array`, ``None`` without vision_msgs); LiDAR frame (pass a LiDAR header).
- BEV map: one ``nav_msgs/OccupancyGrid`` per class (:func:`bev_to_occupancy_grids`); LiDAR frame.
- occupancy: ``PointCloud2`` of non-free voxel centres with a ``label`` field
  (:func:`occupancy_to_pointcloud2`) or a ``CUBE_LIST`` marker (:func:`occupancy_to_markers`); the grid's
  frame (Occ3D: ego frame).
- :func:`diagnostics_message`: ``diagnostic_msgs/DiagnosticArray``.

The grid arrays are indexed ``[ix, iy(, iz)]`` (``perception.constants``); ROS grids are row-major with rows
along y, so :func:`bev_to_occupancy_grids` transposes: cell ``[ix, iy]`` -> ``data[iy * width + ix]``.
"""

import array
import copy

import numba
import numpy as np

from perception.constants import BEV_MAP_CLASSES, BEV_MAP_GRID, DETECTION_CLASSES
from perception.ros.pointcloud import make_pointcloud2
from perception.ros.stamps import make_header
from perception.ros.transforms import yaw_to_quaternion
from perception.viz.colors import DETECTION_COLORS, OCC3D_COLORS

DIAGNOSTIC_LEVELS = {"OK": 0, "WARN": 1, "ERROR": 2, "STALE": 3}
MIN_ARROW_SPEED = 0.2  # m/s: slower boxes get no velocity arrow


def _class_name(label):
    label = int(label)
    return DETECTION_CLASSES[label] if 0 <= label < len(DETECTION_CLASSES) else f"class_{label}"


def _kept(pred, score_threshold):
    boxes = np.asarray(pred.boxes, dtype=np.float64).reshape(-1, 9)
    scores = np.asarray(pred.scores, dtype=np.float64).reshape(-1)
    labels = np.asarray(pred.labels).astype(np.int64).reshape(-1)
    if not (len(boxes) == len(scores) == len(labels)):
        raise ValueError(f"prediction has {len(boxes)} boxes, {len(scores)} scores, {len(labels)} labels")
    keep = (scores >= score_threshold) & np.isfinite(boxes[:, :7]).all(axis=1)
    return boxes[keep], scores[keep], labels[keep]


def _set_pose(pose, xyz, quat):
    pose.position.x, pose.position.y, pose.position.z = (float(v) for v in xyz)
    pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w = (float(v) for v in quat)


def boxes_to_markers(pred, header, score_threshold=0.0):
    """Boxes scoring >= ``score_threshold`` -> ``MarkerArray``: a DELETEALL marker first (clears the last
    frame), then per box a CUBE (ns 'boxes': centre, yaw quaternion about z, scale l, w, h, class colour),
    a TEXT_VIEW_FACING "class score" above it (ns 'labels') and, when the velocity is finite and faster than
    0.2 m/s, an ARROW from the centre to where the box is 1 s later (ns 'velocity'). Ids are unique."""
    # optional (the ros extra): imported where an rclpy message is built
    from geometry_msgs.msg import Point, Pose, Quaternion, Vector3
    from std_msgs.msg import ColorRGBA
    from visualization_msgs.msg import Marker, MarkerArray

    boxes, scores, labels = _kept(pred, score_threshold)
    markers = [Marker(header=header, ns="", id=0, action=Marker.DELETEALL)]
    # Markers are shallow copies of three templates (the generated Marker() builds ~10 default sub-messages,
    # ~2x the cost of the copy). Every field a marker changes gets a new object; the shared defaults
    # (lifetime, mesh, texture) are never mutated.
    cube_t = Marker(header=header, ns="boxes", type=Marker.CUBE, action=Marker.ADD)
    text_t = Marker(header=header, ns="labels", type=Marker.TEXT_VIEW_FACING, action=Marker.ADD,
                    scale=Vector3(z=0.8), color=ColorRGBA(r=1.0, g=1.0, b=1.0, a=1.0))
    arrow_t = Marker(header=header, ns="velocity", type=Marker.ARROW, action=Marker.ADD,
                     scale=Vector3(x=0.15, y=0.35, z=0.4))  # shaft diameter, head diameter, head length
    colours = {}
    next_id = 1

    def colour(label, alpha):
        if (label, alpha) not in colours:  # one object per class and alpha, shared by its markers
            r, g, b = DETECTION_COLORS[label] if 0 <= label < len(DETECTION_COLORS) else (0.7, 0.7, 0.7)
            colours[label, alpha] = ColorRGBA(r=float(r), g=float(g), b=float(b), a=float(alpha))
        return colours[label, alpha]

    for box, score, label in zip(boxes, scores, labels.tolist(), strict=True):  # one marker set per detection (few)
        x, y, z, length, width, height, yaw, vx, vy = box.tolist()
        qx, qy, qz, qw = yaw_to_quaternion(yaw).tolist()
        cube = copy.copy(cube_t)
        cube.id = next_id
        cube.pose = Pose(position=Point(x=x, y=y, z=z), orientation=Quaternion(x=qx, y=qy, z=qz, w=qw))
        cube.scale = Vector3(x=max(length, 1e-3), y=max(width, 1e-3), z=max(height, 1e-3))
        cube.color = colour(label, 0.5)
        text = copy.copy(text_t)
        text.id = next_id + 1
        text.pose = Pose(position=Point(x=x, y=y, z=z + height / 2 + 0.6))
        text.text = f"{_class_name(label)} {score:.2f}"
        markers += [cube, text]
        next_id += 2
        if np.isfinite([vx, vy]).all() and np.hypot(vx, vy) > MIN_ARROW_SPEED:
            arrow = copy.copy(arrow_t)
            arrow.id = next_id
            arrow.pose = Pose()  # identity: the two points are in the header frame
            arrow.points = [Point(x=x, y=y, z=z), Point(x=x + vx, y=y + vy, z=z)]
            arrow.color = colour(label, 1.0)
            markers.append(arrow)
            next_id += 1
    return MarkerArray(markers=markers)


def boxes_to_detection3d_array(pred, header, score_threshold=0.0):
    """Boxes scoring >= ``score_threshold`` -> ``vision_msgs.msg.Detection3DArray`` (one hypothesis per
    detection: ``class_id`` = class name, ``score``; bbox centre with the yaw quaternion, size l, w, h), or
    ``None`` when vision_msgs is not installed (it is not on PyPI)."""
    try:
        # optional: vision_msgs is not on PyPI
        from vision_msgs.msg import BoundingBox3D, Detection3D, Detection3DArray, ObjectHypothesisWithPose
    except ImportError:
        return None
    boxes, scores, labels = _kept(pred, score_threshold)
    detections = []
    for i, (box, score, label) in enumerate(zip(boxes, scores, labels.tolist(), strict=True)):
        x, y, z, length, width, height, yaw = box[:7].tolist()
        hyp = ObjectHypothesisWithPose()
        if hasattr(hyp, "hypothesis"):  # vision_msgs >= 3 (Galactic and later)
            hyp.hypothesis.class_id, hyp.hypothesis.score = _class_name(label), float(score)
        else:  # Foxy
            hyp.id, hyp.score = _class_name(label), float(score)
        _set_pose(hyp.pose.pose, (x, y, z), yaw_to_quaternion(yaw))
        bbox = BoundingBox3D()
        _set_pose(bbox.center, (x, y, z), yaw_to_quaternion(yaw))
        bbox.size.x, bbox.size.y, bbox.size.z = length, width, height
        det = Detection3D(header=header, results=[hyp], bbox=bbox)
        if hasattr(det, "id"):
            det.id = str(i)
        detections.append(det)
    return Detection3DArray(header=header, detections=detections)


def bev_to_occupancy_grids(bev_probs, header):
    """``bev_probs (6, 200, 200)`` in [0, 1], indexed ``[class, ix, iy]`` on ``BEV_MAP_GRID`` -> list of
    ``(class_name, nav_msgs.msg.OccupancyGrid)``: int8 ``round(100 p)`` (NaN -> -1 unknown), resolution
    0.5 m, width (x cells) = height (y cells) = 200, origin = the grid's lower corner (x, y, 0) with identity
    orientation, data row-major with rows along y: cell ``[ix, iy]`` -> ``data[iy * width + ix]``."""
    from nav_msgs.msg import OccupancyGrid  # the ros extra (optional)

    probs = np.asarray(bev_probs, dtype=np.float32)
    expected = (len(BEV_MAP_CLASSES),) + BEV_MAP_GRID.shape
    if probs.shape != expected:
        raise ValueError(f"bev_to_occupancy_grids: bev_probs must be {expected}, got {probs.shape}")
    nx, ny = BEV_MAP_GRID.shape
    cells = np.rint(np.clip(probs, 0.0, 1.0) * 100.0)
    cells = np.where(np.isnan(probs), -1, cells).astype(np.int8)
    grids = []
    for c, name in enumerate(BEV_MAP_CLASSES):
        grid = OccupancyGrid(header=header)
        info = grid.info
        info.map_load_time = header.stamp
        info.resolution = float(BEV_MAP_GRID.size[0])
        info.width, info.height = nx, ny
        info.origin.position.x = float(BEV_MAP_GRID.lower[0])
        info.origin.position.y = float(BEV_MAP_GRID.lower[1])
        info.origin.orientation.w = 1.0
        data = array.array("b")
        data.frombytes(cells[c].T.tobytes())  # C order of the transpose: [iy, ix] row-major
        grid.data = data
        grids.append((name, grid))
    return grids


def _check_occupancy(occ_labels, grid):
    occ = np.asarray(occ_labels)
    if occ.ndim != 3 or tuple(occ.shape) != tuple(grid.shape):
        raise ValueError(f"occupancy labels have shape {occ.shape}, the grid is {grid.shape}")
    return occ


def voxel_centres_reference(occ_labels, grid, free_index):
    """``(M, 3)`` float32 centres (metres, float64 arithmetic then one float32 rounding) and ``(M,)`` uint8
    labels of the non-free voxels, in C order of ``[ix, iy, iz]``. The numpy reference of :func:`voxel_centres`."""
    occ = _check_occupancy(occ_labels, grid)
    index = np.nonzero(occ != free_index)
    centres = np.stack([grid.lower[a] + (index[a] + 0.5) * grid.size[a] for a in range(3)], axis=1)
    return centres.astype(np.float32), occ[index].astype(np.uint8)


@numba.njit(cache=True)
def _nonfree_voxels(occ, free_index, lower, size):
    """Two passes over the volume (count, then fill): no index arrays, no (M, 3) float64 temporaries."""
    nx, ny, nz = occ.shape
    n = 0
    for i in range(nx):
        for j in range(ny):
            for k in range(nz):
                n += occ[i, j, k] != free_index
    centres = np.empty((n, 3), np.float32)
    labels = np.empty(n, np.uint8)
    m = 0
    for i in range(nx):
        for j in range(ny):
            for k in range(nz):
                if occ[i, j, k] != free_index:
                    centres[m, 0] = np.float32(lower[0] + (i + 0.5) * size[0])
                    centres[m, 1] = np.float32(lower[1] + (j + 0.5) * size[1])
                    centres[m, 2] = np.float32(lower[2] + (k + 0.5) * size[2])
                    labels[m] = occ[i, j, k]
                    m += 1
    return centres, labels


def voxel_centres(occ_labels, grid, free_index):
    """:func:`voxel_centres_reference` in one numba pass (the node's output hot path, ~64k voxels a frame)."""
    occ = np.ascontiguousarray(_check_occupancy(occ_labels, grid), dtype=np.uint8)
    return _nonfree_voxels(occ, int(free_index), np.asarray(grid.lower, np.float64), np.asarray(grid.size, np.float64))


def occupancy_to_pointcloud2(occ_labels, grid, free_index, header):
    """``occ_labels (X, Y, Z)`` indexed ``[ix, iy, iz]`` on ``grid`` (a ``GridSpec``) -> PointCloud2 of the
    non-free voxels: float32 ``x, y, z`` voxel centres (m) and uint8 ``label``."""
    centres, labels = voxel_centres(occ_labels, grid, free_index)
    return make_pointcloud2(header, {"x": centres[:, 0], "y": centres[:, 1], "z": centres[:, 2], "label": labels})


def occupancy_palette():
    """``(19, 3)`` float RGB in [0, 1]: the 18 Occ3D class colours (index = label) and grey for others."""
    return np.asarray(list(OCC3D_COLORS) + [(0.5, 0.5, 0.5)], dtype=np.float64)


def occupancy_to_markers(occ_labels, grid, free_index, header):
    """Non-free voxels -> ``MarkerArray`` with one ``CUBE_LIST`` marker (ns 'occupancy', id 0, cube size =
    the voxel size, one colour per voxel from :func:`occupancy_palette`); a DELETE of that marker when no
    voxel is occupied. Building the per-voxel Point/ColorRGBA objects costs ~2 us per voxel (rclpy
    messages); prefer :func:`occupancy_to_pointcloud2` for dense scenes."""
    # optional (the ros extra): imported where an rclpy message is built
    from geometry_msgs.msg import Point
    from std_msgs.msg import ColorRGBA
    from visualization_msgs.msg import Marker, MarkerArray

    centres, labels = voxel_centres(occ_labels, grid, free_index)
    marker = Marker(header=header, ns="occupancy", id=0, type=Marker.CUBE_LIST)
    marker.pose.orientation.w = 1.0
    marker.scale.x, marker.scale.y, marker.scale.z = (float(s) for s in grid.size)
    if len(centres) == 0:
        marker.action = Marker.DELETE
        return MarkerArray(markers=[marker])
    marker.action = Marker.ADD
    palette = occupancy_palette()
    swatches = [ColorRGBA(r=float(r), g=float(g), b=float(b), a=1.0) for r, g, b in palette]
    index = np.minimum(labels, len(palette) - 1).tolist()
    marker.points = [Point(x=x, y=y, z=z) for x, y, z in centres.astype(np.float64).tolist()]
    marker.colors = [swatches[i] for i in index]  # shared colour objects, one per class
    return MarkerArray(markers=[marker])


def diagnostics_message(stamp_ns, node_name, status):
    """``status``: list of ``{name, level ('OK'|'WARN'|'ERROR'|'STALE'), message, values: dict}`` ->
    ``diagnostic_msgs.msg.DiagnosticArray`` (status names ``"<node_name>: <name>"``, hardware_id the node
    name, values stringified). Unknown level -> ``ValueError``."""
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue  # the ros extra (optional)

    out = DiagnosticArray(header=make_header(stamp_ns, ""))
    for entry in status:
        level = str(entry.get("level", "OK")).upper()
        if level not in DIAGNOSTIC_LEVELS:
            raise ValueError(f"diagnostics: unknown level {entry.get('level')!r} (expected {list(DIAGNOSTIC_LEVELS)})")
        out.status.append(
            DiagnosticStatus(
                level=bytes([DIAGNOSTIC_LEVELS[level]]),
                name=f"{node_name}: {entry.get('name', '')}",
                message=str(entry.get("message", "")),
                hardware_id=str(node_name),
                values=[KeyValue(key=str(k), value=str(v)) for k, v in (entry.get("values") or {}).items()],
            )
        )
    return out
