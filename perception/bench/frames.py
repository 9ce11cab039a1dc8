"""Frames for ``perception bench``: dataset :class:`Sample` objects, synthesized or from a real dataroot."""

import math
import os
import tempfile

import numpy as np


def ring_rig(n_cams, width, height):
    """A synthetic camera rig: ``n_cams`` cameras evenly around the LiDAR (LiDAR frame: x right, y forward,
    z up; the first looks along +y), each with a nuScenes-like 70 degree horizontal field of view. Returns
    ``K (3, 3)`` (pixels, shared) and ``lidar2cam (n_cams, 4, 4)`` (LiDAR -> camera optical frame), float64."""
    f = 0.5 * width / math.tan(math.radians(35))
    K = np.array([[f, 0.0, width / 2], [0.0, f, height / 2], [0.0, 0.0, 1.0]])
    lidar2cam = np.tile(np.eye(4), (n_cams, 1, 1))
    for i in range(n_cams):
        yaw = 2 * math.pi * i / n_cams
        d = np.array([math.sin(yaw), math.cos(yaw), 0.0])  # viewing direction in the LiDAR frame
        lidar2cam[i, :3, :3] = np.stack([[d[1], -d[0], 0.0], [0.0, 0.0, -1.0], d])  # rows: camera x, y, z axes
    return K, lidar2cam


def synth_image_size(cfg):
    """``(width, height)`` of the synthetic camera JPEGs that the config's test-time resize expects: the
    tiny configs resize 640 x 360 images (``test_resize`` ~0.42), the full-size ones nuScenes' 1600 x 900."""
    data = cfg["data"]
    width = float(data["image_size"][1])
    resize = float((data.get("augment") or {}).get("test_resize", 1.0) or 1.0)
    return (1600, 900) if width / resize > 1000 else (640, 360)


def synthetic_samples(cfg, count, seed=0, out_dir=None):
    """``count`` keyframes (at most 8 distinct; callers cycle through them) of a dataroot synthesized by
    :func:`perception.synth.generate.generate_dataset` into ``out_dir`` (a temporary folder by default),
    with the config's number of sweeps. Returns ``(samples, dataroot)``."""
    from perception.data.info_file import load_info_file
    from perception.data.nuscenes_index import build_index
    from perception.synth.generate import generate_dataset

    out = out_dir or tempfile.mkdtemp(prefix="m3_bench_")
    sweeps = min(19, int(cfg["data"]["num_sweeps"]))
    per_scene = max(2, min(int(count), 8))
    generate_dataset(out, scenes=1, samples_per_scene=per_scene, seed=seed, sweeps_per_sample=sweeps,
                     image_size=synth_image_size(cfg))
    index = os.path.join(out, "bench_index.pkl")
    build_index(out, "v1.0-trainval", index, num_sweeps=sweeps, progress=False)
    return load_info_file(index, data_root=out, num_sweeps=sweeps), out


def dataroot_samples(cfg, dataroot, version, count):
    """The first ``count`` keyframes of a nuScenes dataroot (the project index is reused when present,
    else built into a temporary folder)."""
    from perception.data.info_file import load_info_file
    from perception.data.nuscenes_index import build_index, default_index_path

    sweeps = int(cfg["data"]["num_sweeps"])
    index = default_index_path(dataroot, version)
    if not os.path.isfile(index):
        index = os.path.join(tempfile.mkdtemp(prefix="m3_bench_index_"), f"index_{version}.pkl")
        build_index(dataroot, version, index, num_sweeps=sweeps, progress=False)
    samples = load_info_file(index, data_root=dataroot, num_sweeps=sweeps)
    if not samples:
        raise ValueError(f"no samples in {index}")
    return samples[: max(1, int(count))]
