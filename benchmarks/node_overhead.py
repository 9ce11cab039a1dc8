"""What the ROS 2 node adds on top of ``Predictor.predict``: message conversion in and out and frame assembly.

    .venv/bin/python benchmarks/node_overhead.py [--repeats 20] [--json out.json]

Measured on a real nuScenes LiDAR keyframe (34,720 points, ``../shared/data/real/surroundocc``) and six raw 1600 x 900
rgb8 images (the node's worst image case: no decoding, one copy each), then separately JPEG decoding of six
real nuScenes-size JPEGs (CompressedImage, the default transport). Frame assembly merges ``--num-sweeps`` past
sweeps (default 10, the nuscenes_full setting; tiny uses 1). Outputs: a prediction with 30 boxes above the
threshold, the six BEV grids and an occupancy volume with 10 % occupied voxels (Occ3D). Median over repeats,
milliseconds.
"""

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
from PIL import Image as PILImage

from perception.constants import CAMERA_NAMES, OCC3D_FREE, OCC3D_GRID
from perception.geometry import make_transform, yaw_to_quat
from perception.ros.calibration import RigCalibration
from perception.ros.image import compressed_to_rgb, image_to_rgb, rgb_to_compressed, rgb_to_image
from perception.ros.outputs import bev_to_occupancy_grids, boxes_to_markers, occupancy_to_pointcloud2
from perception.ros.pointcloud import pointcloud2_to_points, points_to_pointcloud2
from perception.ros.stamps import make_header
from perception.runtime import Prediction
from perception.runtime.assembler import FrameAssembler

REPO = Path(__file__).resolve().parents[1]
# A full real nuScenes LIDAR_TOP keyframe (34,720 points, x y z intensity; SurroundOcc's sample inputs).
LIDAR = REPO.parent / "shared/data/real/surroundocc/tools/generate_occupancy_with_own_data/pc/pc0.npy"


def median_ms(fn, repeats):
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=20, help="timed repetitions per stage (median reported)")
    parser.add_argument("--num-sweeps", type=int, default=10,
                        help="past sweeps merged per frame (tiny: 1, nuscenes_full: 10)")
    parser.add_argument("--json", help="also write the numbers to this JSON file")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    points = np.load(LIDAR).astype(np.float32)[:, :4]
    cloud = points_to_pointcloud2(points, make_header(10**18, "LIDAR_TOP"))
    rgb = rng.integers(0, 255, (900, 1600, 3), dtype=np.uint8)
    raw = [rgb_to_image(rgb, make_header(10**18, name)) for name in CAMERA_NAMES]
    photo = np.asarray(PILImage.fromarray(rgb).resize((160, 90)).resize((1600, 900)))  # smooth: a JPEG-like size
    jpegs = [rgb_to_compressed(photo, make_header(10**18, name), quality=90) for name in CAMERA_NAMES]

    K = np.array([[1260.0, 0, 800], [0, 1260.0, 450], [0, 0, 1]])
    l2c = np.eye(4)
    l2c[:3, :3] = [[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]]
    calib = RigCalibration(lidar2ego=make_transform(yaw_to_quat(np.pi / 2), [0.9, 0, 1.8]),
                           lidar2cam={c: l2c for c in CAMERA_NAMES})
    assembler = FrameAssembler(calib, CAMERA_NAMES, num_sweeps=args.num_sweeps)
    for i in range(11):  # 10 past sweeps at 20 Hz with their poses, then the cameras
        stamp = 10**18 + i * 50_000_000
        assembler.add_pose(stamp, make_transform(yaw_to_quat(0.01 * i), [0.5 * i, 0, 0]))
        assembler.add_sweep(stamp, points)
    now = 10**18 + 10 * 50_000_000
    for name in CAMERA_NAMES:
        assembler.add_camera(name, now, rgb, K)

    occ = np.full(OCC3D_GRID.shape, OCC3D_FREE, np.uint8)
    occ[rng.random(OCC3D_GRID.shape) < 0.1] = 4
    boxes = np.concatenate([rng.uniform(-40, 40, (30, 3)), rng.uniform(1, 5, (30, 3)), rng.uniform(-3, 3, (30, 3))], 1)
    pred = Prediction(boxes=boxes.astype(np.float32), scores=np.full(30, 0.5, np.float32),
                      labels=rng.integers(0, 10, 30), class_names=[], bev_probs=rng.random((6, 200, 200), np.float32),
                      occ_labels=occ)
    header = make_header(now, "LIDAR_TOP")

    def outputs():
        boxes_to_markers(pred, header, 0.3)
        bev_to_occupancy_grids(pred.bev_probs, header)
        occupancy_to_pointcloud2(pred.occ_labels, OCC3D_GRID, OCC3D_FREE, make_header(now, "base_link"))

    r = args.repeats
    numbers = {
        "pointcloud2_to_points (34k points)": median_ms(lambda: pointcloud2_to_points(cloud), r),
        "image_to_rgb x 6 (1600x900 rgb8)": median_ms(lambda: [image_to_rgb(m) for m in raw], r),
        f"assemble ({args.num_sweeps} past sweeps, 6 cameras, motion compensation)":
            median_ms(lambda: assembler.assemble(now, points), r),
        "outputs (30 boxes, 6 BEV grids, occupancy cloud)": median_ms(outputs, r),
    }
    numbers["node overhead, total"] = sum(numbers.values())
    numbers["compressed_to_rgb x 6 (1600x900 JPEG), separate"] = median_ms(
        lambda: [compressed_to_rgb(m) for m in jpegs], r)
    for name, ms in numbers.items():
        print(f"{name:60s} {ms:8.2f} ms")
    if args.json:
        Path(args.json).write_text(json.dumps(numbers, indent=2))


if __name__ == "__main__":
    main()
