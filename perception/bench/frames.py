"""Frames for ``perception bench``: dataset :class:`Sample` objects, synthesized or from a real dataroot."""

import os
import tempfile

from perception.data.info_file import load_info_file
from perception.data.nuscenes_index import build_index, default_index_path
from perception.runtime.ring_frame import synth_image_size
from perception.synth.generate import generate_dataset


def synthetic_samples(cfg, count, seed=0, out_dir=None):
    """``count`` keyframes (at most 8 distinct; callers cycle through them) of a dataroot synthesized by
    :func:`perception.synth.generate.generate_dataset` into ``out_dir`` (a temporary folder by default),
    with the config's number of sweeps. Returns ``(samples, dataroot)``."""
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
    sweeps = int(cfg["data"]["num_sweeps"])
    index = default_index_path(dataroot, version)
    if not os.path.isfile(index):
        index = os.path.join(tempfile.mkdtemp(prefix="m3_bench_index_"), f"index_{version}.pkl")
        build_index(dataroot, version, index, num_sweeps=sweeps, progress=False)
    samples = load_info_file(index, data_root=dataroot, num_sweeps=sweeps)
    if not samples:
        raise ValueError(f"no samples in {index}")
    return samples[: max(1, int(count))]
