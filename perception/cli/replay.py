"""``perception replay``: run a recorded log through the perception node's code and write its outputs.

    perception replay INPUT --config C --checkpoint K --out OUT.mcap [--copy-inputs] [--render DIR] [--video V.mp4]
    perception replay INPUT --list-topics [--config C]

INPUT: a rosbag2 (MCAP file or folder, or sqlite3 folder; ROS 2 CDR), an MCAP with Foxglove protobuf
schemas (Foxglove's nuScenes conversions: /LIDAR_TOP foxglove.PointCloud, /CAM_*/image_rect_compressed,
/CAM_*/camera_info, /tf; lower-case names are matched too), or a nuScenes dataroot (--scene, --version).

Every LiDAR message goes through perception.ros.bridge.PerceptionBridge, the code perception_node runs
(message conversion, sweep accumulation with the ego poses, camera staleness rule, Predictor, output
messages), and the node's topics (/perception/markers, /perception/bev/<class>, /perception/occupancy, ...)
are written to OUT with the input stamps; --copy-inputs also copies the input messages so OUT alone shows
predictions over the sensor data in Foxglove. A LiDAR frame is processed once the input has moved --lookahead
seconds past its stamp (every camera image and pose of the frame has been read), so the result does not
depend on timing: the same input twice on CPU gives byte-identical output messages.

Beside OUT: <OUT>.summary.json (per-stage latency mean/p50/p99, skipped frames by reason, bad input), and,
when the input is a nuScenes scene or a bag converted from one (or --dataroot names its dataroot),
<OUT>.metrics.json with the evaluation of its keyframes (report in <OUT>_eval/).
Extrinsics come from /tf_static and /tf (base_link -> sensor frames) or --calibration YAML.
Exit codes: 0 replayed (even with skipped frames: see the summary), 2 input or arguments unusable.
"""

import os
import sys

from perception.cli.errors import CommandError
from perception.cli.fallback_args import add_fallback_arguments, fallback_models
from perception.constants import CAMERA_NAMES, MAX_CAMERA_LIDAR_DELAY_S
from perception.replay.topics import TopicError, TopicOptions, describe, resolve
from perception.ros.camera_trigger import LIDAR_TIMEOUT_S


def add_parser(subparsers):
    p = subparsers.add_parser("replay", help="replay a bag / MCAP / nuScenes scene through the perception node's code",
                              description=__doc__)
    p.add_argument("input", help="rosbag2 folder, .mcap file (ROS 2 or Foxglove protobuf) or nuScenes dataroot")
    p.add_argument("--config", help="model config (e.g. configs/tiny.py)")
    p.add_argument("--checkpoint", help="trained checkpoint")
    p.add_argument("--cfg-options", nargs="*", default=[], help="config overrides key=value (as the model was trained)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="inference device (default cpu)")
    p.add_argument("--bf16", action="store_true",
                   help="bf16 autocast on a CPU with native bf16 (AVX512-BF16 / AMX; else fp32, with a warning)")
    add_fallback_arguments(p)
    p.add_argument("--out", help="output bag: OUT.mcap (one file) or a rosbag2 folder")
    p.add_argument("--format", choices=["mcap", "sqlite3"], default="mcap", help="output storage (default mcap)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    p.add_argument("--list-topics", action="store_true", help="print the input's topics and which ones replay uses")
    p.add_argument("--scene", help="dataroot input: scene name (default the first)")
    p.add_argument("--version", default=None, help="nuScenes version of a dataroot input or of --dataroot "
                                                   "(default v1.0-trainval)")
    p.add_argument("--dataroot", help="nuScenes dataroot of the log's scene: GT for scoring and drawing when the "
                                      "input does not carry /nuscenes/sample (Foxglove MCAPs)")
    p.add_argument("--lidar-topic", default="/LIDAR_TOP", help="LiDAR topic (default /LIDAR_TOP; matched "
                                                               "case-insensitively)")
    p.add_argument("--camera-prefix", default="/", help="camera topics are <prefix><CAM>/image_rect_compressed "
                                                        "(or /image_rect) and <prefix><CAM>/camera_info")
    p.add_argument("--odom-topic", default="/odom", help="nav_msgs/Odometry ego poses (else from /tf map -> base_link)")
    p.add_argument("--tf-topic", default="/tf")
    p.add_argument("--tf-static-topic", default="/tf_static")
    p.add_argument("--sample-topic", default="/nuscenes/sample", help="keyframe sample tokens (converted bags)")
    p.add_argument("--ego-frame", default="base_link")
    p.add_argument("--calibration", help="rig calibration YAML instead of the input's tf")
    p.add_argument("--max-camera-lidar-delay", type=float, default=MAX_CAMERA_LIDAR_DELAY_S,
                   help="s: a camera image further than this from the LiDAR stamp is missing for the frame")
    p.add_argument("--lidar-timeout", type=float, default=LIDAR_TIMEOUT_S,
                   help="s of message time without LiDAR after which --lidar-down-camera triggers the frames")
    p.add_argument("--lidar-down-camera", default="auto",
                   help="while the LiDAR is silent, each image of this camera triggers a frame without LiDAR points, "
                        "as in perception_node ('auto': the first model camera in the input; 'none': no frames)")
    p.add_argument("--lookahead", type=float, default=0.3, help="s of input read past a LiDAR stamp before its frame "
                                                                "is processed (>= --max-camera-lidar-delay)")
    p.add_argument("--score-threshold", type=float, default=0.3, help="boxes below this score are not written")
    p.add_argument("--occupancy-markers", action="store_true", help="also write perception/occupancy_markers")
    p.add_argument("--copy-inputs", action="store_true", help="also copy the input messages into OUT")
    p.add_argument("--max-frames", type=int, help="stop after this many LiDAR frames")
    p.add_argument("--render", metavar="DIR", help="write a BEV PNG and a camera mosaic per frame into DIR")
    p.add_argument("--video", metavar="OUT_MP4", help="assemble the rendered frames into a video (imageio-ffmpeg)")
    p.add_argument("--fps", type=float, default=2.0, help="video frame rate (default 2)")
    p.add_argument("--no-score", action="store_true", help="do not score keyframes")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args):
    # heavy imports (torch, numpy, ...) stay in the functions: `perception --help` imports this module
    from perception.replay.sources import open_source

    if args.video and not args.list_topics:  # before loading anything: a missing package is one clear line
        from perception.replay.render import video_writer_available

        if video_writer_available():
            raise CommandError(video_writer_available())
    version = args.version or "v1.0-trainval"
    source = open_source(args.input, scene=args.scene, version=version)
    topics = TopicOptions(args.lidar_topic, args.camera_prefix, args.odom_topic, args.tf_topic, args.tf_static_topic,
                          args.sample_topic)
    if args.list_topics:
        cameras = _config_cameras(args.config)
        available = source.topics()
        try:
            roles = resolve(available, topics, cameras)
        except TopicError as e:  # the listing is what was asked for: say why it would not replay, still list
            roles = None
            print(f"not replayable as configured: {e}")
        print(f"{source.name}:")
        for line in describe(available, roles):
            print("  " + line)
        for line in getattr(source, "problems", []):
            print(f"  problem: {line}")
        return 0
    if not (args.config and args.checkpoint and args.out):
        raise ValueError("give --config, --checkpoint and --out (or --list-topics)")
    predictor = _predictor(args)
    from perception.replay.options import ReplayOptions
    from perception.replay.run import replay

    calibration = None
    if args.calibration:
        from perception.ros.calibration import load_calibration_yaml

        try:
            calibration = load_calibration_yaml(args.calibration)
        except (OSError, ValueError) as e:  # the YAML's own message does not say which argument it came from
            raise CommandError(f"--calibration: {e}") from e
    options = ReplayOptions(topics=topics, max_camera_lidar_delay=args.max_camera_lidar_delay,
                            lookahead_s=args.lookahead, score_threshold=args.score_threshold, ego_frame=args.ego_frame,
                            occupancy_markers=args.occupancy_markers, copy_inputs=args.copy_inputs,
                            max_frames=args.max_frames, calibration=calibration, lidar_timeout_s=args.lidar_timeout,
                            lidar_down_camera=args.lidar_down_camera)
    try:
        result = replay(source, predictor, args.out, options, fmt=args.format, overwrite=args.overwrite,
                        render_dir=args.render, video=args.video, dataroot=args.dataroot, version=args.version,
                        score=not args.no_score, progress=not args.no_progress,
                        log=lambda line: print(line, file=sys.stderr if line.startswith("warning") else sys.stdout))
    except RuntimeError as e:  # perception.replay's word for input it cannot use (a folder with several .mcap files)
        raise CommandError(str(e)) from e
    print(f"wrote {result['out']} ({result['summary']['frames_processed']} frames)")
    return 0


def _predictor(args):
    """The Predictor of --config / --checkpoint; an error naming the argument otherwise."""
    for key in ("config", "checkpoint"):
        if not os.path.isfile(getattr(args, key)):
            raise FileNotFoundError(f"--{key}: file not found: {getattr(args, key)}")
    # heavy imports (torch, numpy, ...) stay in the functions: `perception --help` imports this module
    from perception.config import load_config
    from perception.runtime import Predictor, add_fallback_models

    try:
        predictor = Predictor(load_config(args.config, list(args.cfg_options)), args.checkpoint, device=args.device,
                              bf16=args.bf16)
        return add_fallback_models(predictor, fallback_models(args), device=args.device, bf16=args.bf16)
    except (ValueError, FileNotFoundError):
        raise
    except Exception as e:  # noqa: BLE001 - an unreadable checkpoint (torch.load's errors) is one line too
        raise CommandError(f"--checkpoint {args.checkpoint}: {type(e).__name__}: {e}") from e


def _config_cameras(config):
    if not config:
        return CAMERA_NAMES
    # heavy imports (torch, numpy, ...) stay in the functions: `perception --help` imports this module
    from perception.config import load_config

    cams = load_config(config)["data"]["cameras"]
    return tuple(c for c in CAMERA_NAMES if c in cams)
