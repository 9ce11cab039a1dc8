"""perception_node under load over real DDS: LiDAR at 20 Hz for 60 s while inference takes far longer than
50 ms. The frame slot must keep it current: no backlog (latency does not grow), bounded memory, and every
received frame either answered or counted as dropped."""

import time

import numpy as np
import pytest
import torch
from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import Odometry
from rclpy.qos import QoSProfile
from sensor_msgs.msg import PointCloud2
from visualization_msgs.msg import MarkerArray

from perception.config import load_config
from perception.models import build_model
from perception.ros.calibration import RigCalibration, write_calibration_yaml
from perception.ros.pointcloud import points_to_pointcloud2
from perception.ros.stamps import make_header, stamp_to_ns
from perception.ros.transforms import matrix_to_odometry
from perception.training.checkpoint import save_checkpoint
from ros_harness import REPO, Bus, diagnostics_values, start_node, stop

LIDAR = "surroundocc/tools/generate_occupancy_with_own_data/pc/pc0.npy"  # a real 34,720-point nuScenes keyframe
RATE_HZ, DURATION_S = 20.0, 60.0


def rss_mb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.timeout(300)
def test_20hz_for_60s_no_backlog_bounded_memory(real_dir, tmp_path):
    config = REPO / "configs" / "tiny_lidar.py"
    torch.manual_seed(0)
    checkpoint = tmp_path / "lidar.pth"
    save_checkpoint(checkpoint, {"model": build_model(load_config(config).model).state_dict()})
    write_calibration_yaml(RigCalibration(lidar2ego=np.eye(4)), tmp_path / "rig.yaml")
    bus = Bus()
    outputs = bus.subscribe("/perception/markers", MarkerArray)
    bus.subscribe("/diagnostics", DiagnosticArray)
    lidar = bus.publisher("/LIDAR_TOP", PointCloud2, QoSProfile(depth=10))
    odom = bus.publisher("/odom", Odometry)
    node = start_node("ros_nodes.perception_node", {"config": str(config), "checkpoint": str(checkpoint),
                      "calibration": str(tmp_path / "rig.yaml"), "sensor_qos": "reliable"}, tmp_path / "node.log")
    points = np.load(real_dir / LIDAR).astype(np.float32)[:, :4]
    sent = {}  # stamp -> wall time published
    try:
        assert bus.wait_for(lambda: bus.node.count_subscribers("/LIDAR_TOP") > 0, 60, [node])
        start = time.monotonic()
        rss = []
        for i in range(int(RATE_HZ * DURATION_S)):
            time.sleep(max(0.0, start + i / RATE_HZ - time.monotonic()))
            stamp = 1_700_000_000_000_000_000 + i * 50_000_000
            odom.publish(matrix_to_odometry(np.eye(4), stamp, "odom", "base_link"))
            lidar.publish(points_to_pointcloud2(points, make_header(stamp, "LIDAR_TOP")))
            sent[stamp] = time.monotonic()
            if i % int(RATE_HZ * 10) == 0:
                rss.append(rss_mb(node.pid))
        bus.wait_for(lambda: False, 8.0, [node])  # let the last frame finish
        rss.append(rss_mb(node.pid))
        frames = [diagnostics_values(m, ": frames") for m in bus.messages("/diagnostics")]
        final = [f for f in frames if f][-1]
    finally:
        stop(node)
        bus.close()
    answered = {stamp_to_ns(m.markers[0].header.stamp): t for t, m in list(outputs)}
    received, processed = int(final["received"]), int(final["processed"])
    dropped, failed = int(final["dropped"]), int(final["failed"])
    # The node can only count what DDS hands it. Reliable KEEP_LAST (depth 10 on both ends) is not
    # lossless: when the node's executor is starved for ~0.5 s (a loaded CI machine) the writer's history
    # overwrites unacknowledged samples. Such losses stay rare; the node's own accounting must be exact.
    lost_in_dds = len(sent) - received
    assert 0 <= lost_in_dds <= 0.01 * len(sent) and failed == 0, (len(sent), final)
    assert processed == len(answered) and dropped == received - processed  # every frame answered or dropped
    assert 3 <= processed < received / 4  # inference is slower than 20 Hz: most frames dropped, none queued
    latency = np.array([answered[s] - sent[s] for s in sorted(answered)])
    # No backlog: each answer is about one inference after its LiDAR message, the last as the first, the first
    # too: the node's warm-up frame (parameter warm_up, on) paid the first forward's one-off start-up, which as
    # the first answer took 19 s beside three trainings on this 2-core VM while every later answer took 2-3.3 s.
    assert latency.max() < 10.0 and latency[-5:].mean() < 2.0 * latency[:5].mean() + 0.5, latency
    # Bounded memory: allocator churn moves RSS up and down, but it does not climb with the frames received.
    assert rss[-1] - rss[1] < 200 and max(rss) < 1.6 * rss[1], f"RSS {rss} MB"
    print(f"load: {processed} of {received} frames answered ({processed / DURATION_S:.2f} Hz), "
          f"{lost_in_dds} of {len(sent)} lost in DDS, "
          f"latency median {np.median(latency):.2f} s max {latency.max():.2f} s, RSS {rss} MB")
