"""One comparison of the node's output messages with a ``Prediction``: used by the DDS node test and the
replay round trip, so both prove the same thing (conversion, calibration and sweeps lose nothing)."""

import numpy as np
from visualization_msgs.msg import Marker

from perception.constants import BEV_MAP_CLASSES, OCC3D_FREE, OCC3D_GRID
from perception.ros.pointcloud import pointcloud2_fields


def markers_boxes(msg):
    """``(K, 6)`` x, y, z, l, w, h of the CUBE markers (ns 'boxes') of a MarkerArray, and their yaws."""
    cubes = [m for m in msg.markers if m.ns == "boxes" and m.type == Marker.CUBE]
    rows = [[m.pose.position.x, m.pose.position.y, m.pose.position.z, m.scale.x, m.scale.y, m.scale.z] for m in cubes]
    yaws = [2 * np.arctan2(m.pose.orientation.z, m.pose.orientation.w) for m in cubes]
    return np.array(rows).reshape(-1, 6), np.array(yaws)


def check_outputs(topic_messages, expected, lidar_frame="LIDAR_TOP", ego_frame="base_link"):
    """``topic_messages``: output topic (``/perception/...``) -> message of one frame; ``expected``: the
    ``Predictor.predict_sample`` result for the same sample. Boxes to 2 mm and 2 mrad, BEV grids to one
    percent step, occupancy labels on all but 1e-4 of the voxels (near-ties in the argmax)."""
    check_boxes(topic_messages, expected, lidar_frame)
    check_map(topic_messages, expected)
    check_occupancy(topic_messages, expected, ego_frame)


def check_boxes(topic_messages, expected, lidar_frame="LIDAR_TOP"):
    """The markers' boxes against ``expected.boxes`` (LiDAR frame): 2 mm and 2 mrad; at least one box."""
    markers = topic_messages["/perception/markers"]
    assert markers.markers[0].action == Marker.DELETEALL and markers.markers[0].header.frame_id == lidar_frame
    got, yaws = markers_boxes(markers)
    assert len(got) == len(expected.boxes) > 0
    order_got, order_exp = np.lexsort(got[:, :2].T), np.lexsort(expected.boxes[:, :2].T)
    np.testing.assert_allclose(got[order_got], expected.boxes[order_exp, :6], atol=2e-3)
    yaw_err = np.angle(np.exp(1j * (yaws[order_got] - expected.boxes[order_exp, 6])))
    assert np.abs(yaw_err).max() < 2e-3


def check_map(topic_messages, expected):
    """Each class's BEV grid (percent) against ``expected.bev_probs``, to one percent step."""
    for c, name in enumerate(BEV_MAP_CLASSES):
        grid = topic_messages[f"/perception/bev/{name}"]
        data = np.asarray(grid.data, np.int16).reshape(grid.info.height, grid.info.width).T  # [ix, iy]
        assert np.abs(data - np.round(100 * expected.bev_probs[c])).max() <= 1, name


def check_occupancy(topic_messages, expected, ego_frame="base_link"):
    """The occupancy cloud (Occ3D, ego frame) against ``expected.occ_labels`` on all but 1e-4 of the voxels."""
    occ = topic_messages["/perception/occupancy"]
    assert occ.header.frame_id == ego_frame
    fields = pointcloud2_fields(occ)
    idx = [np.floor((fields[a] - OCC3D_GRID.lower[i]) / OCC3D_GRID.size[i]).astype(int) for i, a in enumerate("xyz")]
    labels = np.full(OCC3D_GRID.shape, OCC3D_FREE, np.uint8)
    labels[idx[0], idx[1], idx[2]] = fields["label"]
    assert (labels == expected.occ_labels).mean() > 0.9999
