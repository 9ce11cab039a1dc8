"""perception_node's /diagnostics statuses (perception.ros.node_status): levels and values from its counters."""

from perception.ros.bridge import InputErrors
from perception.ros.node_status import node_statuses
from perception.runtime.assembler import FrameStatus

FRAMES = {"received": 3, "processed": 3, "failed": 0, "dropped": 0}


def statuses(idle=0.1, status=None, notes=(), errors=None, frames=FRAMES, timings=None, precision="fp32", model="main"):
    out = node_statuses(idle, 1.0, status, list(notes), timings or {}, errors or InputErrors(), frames, precision,
                        model)
    return {s["name"]: s for s in out}


def ok_frame(**cameras):
    return FrameStatus(stamp_ns=1, points=1000, sweeps_used=1, motion_compensated=True,
                       cameras={"CAM_FRONT": "ok", **cameras})


def test_all_sensors_ok():
    s = statuses(status=ok_frame(), timings={"predict": 812.345})
    assert s["inputs"]["level"] == "OK" and s["inputs"]["message"] == "all sensors ok"
    assert s["inputs"]["values"]["camera CAM_FRONT"] == "ok" and s["inputs"]["values"]["sweeps_merged"] == 1
    assert s["latency"]["values"] == {"precision": "fp32", "fallback": "none", "predict": "812.3"}
    assert s["frames"]["level"] == "OK" and s["frames"]["message"] == "3 processed, 0 dropped, 0 failed"


def test_lidar_silent_is_an_error():
    assert statuses(idle=None)["inputs"]["level"] == "ERROR"
    assert statuses(idle=None)["inputs"]["message"] == "LiDAR: no message yet"
    late = statuses(idle=3.04, status=ok_frame())["inputs"]
    assert late["level"] == "ERROR" and late["values"]["lidar"] == "no message for 3.0 s"
    assert statuses(idle=0.99, status=ok_frame())["inputs"]["level"] == "OK"  # within lidar_timeout (1 s)


def test_a_stale_camera_a_degraded_frame_or_bad_input_warns():
    stale = statuses(status=ok_frame(CAM_BACK="stale"))["inputs"]
    assert stale["level"] == "WARN" and stale["values"]["camera CAM_BACK"] == "stale"
    noted = statuses(status=ok_frame(), notes=["no LiDAR points: camera-only"])["inputs"]
    assert noted["level"] == "WARN" and noted["message"] == "no LiDAR points: camera-only"
    errors = InputErrors()
    errors.add("lidar: pointcloud_layout", "point_step 8 < 16")
    errors.add("lidar: pointcloud_layout", "point_step 4 < 16")
    bad = statuses(status=ok_frame(), errors=errors)["inputs"]
    assert bad["level"] == "WARN" and bad["values"]["bad input lidar: pointcloud_layout"] == "2 (point_step 4 < 16)"


def test_a_failed_frame_warns_on_frames():
    s = statuses(frames=dict(FRAMES, failed=1, dropped=2), precision="bf16")
    assert s["frames"]["level"] == "WARN" and s["frames"]["message"] == "3 processed, 2 dropped, 1 failed"
    assert s["latency"]["message"].endswith("(bf16)")


def test_a_frame_run_by_a_fallback_model_names_it_and_warns():
    note = "no cameras: fallback model configs/tiny_lidar.py (lidar.pth) ran this frame"
    s = statuses(status=ok_frame(CAM_FRONT="stale"), notes=[note], model="no_cameras")
    assert s["latency"]["values"]["fallback"] == "no_cameras"
    assert s["inputs"]["level"] == "WARN" and s["inputs"]["message"] == note
