"""End-to-end latency and output rate of perception_node over real DDS on this machine.

    .venv/bin/python benchmarks/node_latency.py --dataroot D --checkpoint K [--config configs/tiny.py]
        [--rate 1.0] [--seconds 60]

Starts ``sensor_player`` (wall-clock stamps: ``use_sim_stamps:=false``, looping the scene) and
``perception_node`` as processes, subscribes to ``perception/markers`` and reports, over ``--seconds``:
output rate (Hz), latency = output receipt (wall) - LiDAR stamp (wall at publish) median / p90, and the node's
own per-stage timings and dropped-frame count from ``/diagnostics``.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from visualization_msgs.msg import MarkerArray

REPO = Path(__file__).resolve().parents[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataroot", required=True, help="nuScenes-format dataroot to play (e.g. the demo's)")
    parser.add_argument("--checkpoint", required=True, help="checkpoint for --config")
    parser.add_argument("--config", default=str(REPO / "configs" / "tiny.py"), help="model config")
    parser.add_argument("--rate", type=float, default=1.0, help="player speed factor")
    parser.add_argument("--seconds", type=float, default=60.0, help="measurement window after the first output")
    parser.add_argument("--domain", type=int, default=77, help="ROS_DOMAIN_ID for the three processes")
    args = parser.parse_args()
    env = dict(os.environ, ROS_DOMAIN_ID=str(args.domain), PYTHONPATH=str(REPO))
    tmp = Path(tempfile.mkdtemp())
    rig = tmp / "rig.yaml"
    player = subprocess.Popen([sys.executable, "-m", "ros_nodes.sensor_player", "--ros-args", "-p",
                               f"dataroot:={args.dataroot}", "-p", f"rate:={args.rate}", "-p", "loop:=true", "-p",
                               "use_sim_stamps:=false", "-p", f"calibration_out:={rig}", "-p",
                               "wait_for_subscribers:=1"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    node = subprocess.Popen([sys.executable, "-m", "ros_nodes.perception_node", "--ros-args", "--params-file",
                             str(REPO / "configs/ros/perception.yaml"), "-p", f"config:={args.config}", "-p",
                             f"checkpoint:={args.checkpoint}", "-p", f"calibration:={rig}", "-p",
                             "calibration_wait:=30.0"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    context = Context()
    rclpy.init(context=context, domain_id=args.domain)
    sub = rclpy.create_node("latency_probe", context=context)
    latencies, arrivals, diags = [], [], []

    def on_markers(msg):
        now = time.time_ns()
        stamp = msg.markers[0].header.stamp
        latencies.append((now - (stamp.sec * 10**9 + stamp.nanosec)) / 1e9)
        arrivals.append(now / 1e9)

    sub.create_subscription(MarkerArray, "/perception/markers", on_markers, 10)
    sub.create_subscription(DiagnosticArray, "/diagnostics", lambda m: diags.append(m), 10)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(sub)
    spinning = threading.Event()
    spinning.set()

    def spin():
        while spinning.is_set():
            executor.spin_once(timeout_sec=0.1)

    thread = threading.Thread(target=spin)
    thread.start()
    try:
        deadline = time.time() + 180
        while not arrivals and time.time() < deadline:
            time.sleep(0.1)
        first = len(arrivals)
        time.sleep(args.seconds)
        lat = latencies[first:]
        rate = (len(arrivals) - first) / args.seconds
        print(f"outputs: {rate:.2f} Hz over {args.seconds:.0f} s; latency (LiDAR stamp -> output received) "
              f"median {statistics.median(lat):.3f} s, p90 {sorted(lat)[int(0.9 * len(lat))]:.3f} s")
        for status in diags[-1].status:
            print(f"  {status.name}: {status.message} " + ", ".join(f"{kv.key}={kv.value}" for kv in status.values
                                                                      if not kv.key.startswith("bad input")))
    finally:
        for proc in (player, node):
            proc.terminate()
            proc.wait(10)
        spinning.clear()
        thread.join()
        executor.shutdown()
        rclpy.shutdown(context=context)


if __name__ == "__main__":
    main()
