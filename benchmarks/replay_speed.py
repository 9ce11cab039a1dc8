"""Log replay speed: nuScenes -> bag conversion throughput and replay overhead around the Predictor.

    OMP_NUM_THREADS=1 python benchmarks/replay_speed.py --samples 8 --sweeps 4 --config configs/tiny.py

Synthesizes one scene (``--samples`` keyframes, ``--sweeps`` sweeps before each: 40 LiDAR frames by default),
converts it to an MCAP and a sqlite3 bag (timed), then replays the MCAP through ``perception replay``'s code with
random ``--config`` weights (inference cost does not depend on the weights' values) and prints one JSON line:
conversion frames/s, per-stage latency (mean/p50/p99 ms) and the replay overhead (bag read, decode, message
conversion, write) as a fraction of the frame time. Numbers for docs/benchmarks.md come from here.
"""

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import torch

from perception.config import load_config
from perception.models import build_model
from perception.replay.convert import convert_scene
from perception.replay.options import ReplayOptions
from perception.replay.run import replay
from perception.replay.sources import open_source
from perception.runtime import Predictor
from perception.synth.generate import generate_dataset
from perception.training.checkpoint import save_checkpoint


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--samples", type=int, default=8)
    p.add_argument("--sweeps", type=int, default=4)
    p.add_argument("--config", default="configs/tiny.py")
    p.add_argument("--frames", type=int, default=None, help="replay only this many LiDAR frames")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # camera sweeps: images near every LiDAR sweep, so every replayed frame runs the camera branch too
        generate_dataset(tmp / "data", scenes=1, samples_per_scene=args.samples, seed=args.seed,
                         sweeps_per_sample=args.sweeps, camera_sweeps=True)
        conv = {}
        for fmt, out in (("mcap", tmp / "scene.mcap"), ("sqlite3", tmp / "scene_db")):
            r = convert_scene(tmp / "data", "v1.0-trainval", None, out, fmt=fmt, progress=False)
            size = out.stat().st_size if out.is_file() else sum(f.stat().st_size for f in out.iterdir())
            conv[fmt] = {"seconds": round(r.seconds, 2), "lidar_frames": r.lidar, "images": r.images,
                         "messages": r.messages, "lidar_frames_per_s": round(r.frames_per_s, 1),
                         "MB": round(size / 2**20, 1)}
        torch.manual_seed(0)
        cfg = load_config(args.config)
        save_checkpoint(tmp / "ck.pth", {"model": build_model(cfg.model).state_dict()})
        predictor = Predictor(cfg, tmp / "ck.pth")
        t0 = time.perf_counter()
        result = replay(open_source(tmp / "scene.mcap"), predictor, tmp / "out.mcap",
                        ReplayOptions(max_frames=args.frames), score=False, progress=False, log=lambda line: None)
        wall = time.perf_counter() - t0
        s = result["summary"]
        line = {"machine": f"{platform.machine()} {torch.get_num_threads()} torch threads", "config": args.config,
                "conversion": conv, "replay_frames": s["frames_processed"], "replay_wall_s": round(wall, 1),
                "frames_without_cameras": s["frames_without_cameras"],
                "overhead_fraction": round(s["overhead_fraction"], 4),
                "stages_ms": {k: {m: round(v, 1) for m, v in d.items()} for k, d in s["stages_ms"].items()}}
        print(json.dumps(line))


if __name__ == "__main__":
    main()
