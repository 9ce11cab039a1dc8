"""CameraTrigger: camera images trigger frames only while the LiDAR has been silent for longer than the timeout
(message stamps), only for the trigger camera, and a LiDAR that never starts counts as silent."""

import pytest

from perception.ros.camera_trigger import CameraTrigger, trigger_camera

S = 1_000_000_000  # ns per s


def test_fires_only_after_the_lidar_timeout_and_stops_when_the_lidar_returns():
    trigger = CameraTrigger("CAM_FRONT", 1.0)
    trigger.on_lidar(10 * S)
    assert not trigger.fires("CAM_FRONT", 10 * S + S // 2)  # LiDAR 0.5 s ago
    assert not trigger.fires("CAM_FRONT", 11 * S)  # exactly the timeout: not yet
    assert trigger.fires("CAM_FRONT", 11 * S + 1)
    assert not trigger.fires("CAM_BACK", 12 * S)  # not the trigger camera
    trigger.on_lidar(12 * S)
    assert not trigger.fires("CAM_FRONT", 12 * S + S // 10)
    trigger.on_lidar(11 * S)  # an older LiDAR stamp does not move the silence back
    assert trigger.fires("CAM_FRONT", 13 * S + 1)


def test_a_lidar_that_never_starts_is_down_after_the_timeout_from_the_first_image():
    trigger = CameraTrigger("CAM_FRONT", 0.5)
    assert not trigger.fires("CAM_FRONT", 100 * S)
    assert not trigger.fires("CAM_FRONT", 100 * S + S // 2)
    assert trigger.fires("CAM_FRONT", 100 * S + S // 2 + 1)


def test_disabled_without_a_camera_and_a_bad_timeout_is_refused():
    trigger = CameraTrigger("", 1.0)
    assert not trigger.fires("CAM_FRONT", 100 * S) and not trigger.fires("", 200 * S)
    with pytest.raises(ValueError, match="lidar_timeout must be > 0"):
        CameraTrigger("CAM_FRONT", 0.0)


def test_the_trigger_camera_setting():
    cams = ["CAM_FRONT", "CAM_BACK"]
    assert trigger_camera("auto", cams) == "CAM_FRONT" and trigger_camera("auto", []) is None
    assert trigger_camera("none", cams) is None and trigger_camera("CAM_BACK", cams) == "CAM_BACK"
    with pytest.raises(ValueError, match="lidar_down_camera: 'CAM_FRONT_LEFT' is not one of the cameras"):
        trigger_camera("CAM_FRONT_LEFT", cams)
