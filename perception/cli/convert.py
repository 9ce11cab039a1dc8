"""``perception convert nuscenes``: a nuScenes scene as a ROS 2 bag (the sensor player's topics and messages).

    perception convert nuscenes --dataroot D --version V --scene NAME --out OUT.mcap
    perception convert nuscenes --dataroot D --version V --scene NAME --out OUT_DIR --format sqlite3
    perception convert nuscenes --dataroot D --version V --all-scenes --out DIR     # DIR/<scene>.mcap each

Topics: /LIDAR_TOP (PointCloud2, every sweep), /CAM_*/image_rect_compressed (CompressedImage, the JPEG bytes)
and /CAM_*/camera_info (CameraInfo), /odom (Odometry map -> base_link), /tf and /tf_static (tf2_msgs/TFMessage:
ego pose, base_link -> sensors), /markers/annotations (MarkerArray: GT boxes of each keyframe, LiDAR frame)
and /nuscenes/sample (std_msgs/String JSON: the keyframe's sample token, so replay can score the bag).
OUT ending in .mcap is one MCAP file (Foxglove, ros2 bag and the mcap tools open it); otherwise a rosbag2
folder (MCAP or sqlite3 storage).
"""

import sys


def add_parser(subparsers):
    p = subparsers.add_parser("convert", help="convert a nuScenes scene into a ROS 2 bag (MCAP or sqlite3)",
                              description=__doc__)
    p.add_argument("source", choices=["nuscenes"], help="what to convert (nuscenes: a nuScenes-format dataroot)")
    p.add_argument("--dataroot", required=True, help="nuScenes-format dataroot")
    p.add_argument("--version", default="v1.0-trainval", help="table folder (default v1.0-trainval)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--scene", help="scene name (default: the first scene)")
    which.add_argument("--all-scenes", action="store_true", help="one bag per scene, written into --out (a folder)")
    p.add_argument("--out", required=True, help="OUT.mcap (one file), a rosbag2 folder, or with --all-scenes a folder")
    p.add_argument("--format", choices=["mcap", "sqlite3"], default="mcap", help="bag storage (default mcap)")
    p.add_argument("--no-gt", action="store_true", help="leave out the GT box markers")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args):
    # heavy imports (torch, numpy, ...) stay in the functions: `perception --help` imports this module
    from perception.replay.convert import convert_all, convert_scene

    progress, gt = not args.no_progress, not args.no_gt
    if args.all_scenes:
        results = convert_all(args.dataroot, args.version, args.out, args.format, progress, gt, args.overwrite)
    else:
        results = [convert_scene(args.dataroot, args.version, args.scene, args.out, args.format, progress, gt,
                                 args.overwrite)]
    for r in results:
        for line in r.problems:
            print(f"warning: {line}", file=sys.stderr)
        print(r.line())
    return 0
