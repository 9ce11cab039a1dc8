"""Samples as a person names them: by token or by position, from an info/index file or a dataroot."""

import os
import tempfile

from perception.data.info_file import load_info_file
from perception.data.nuscenes_index import build_index


def find_sample(samples, key):
    """The sample whose token is ``key``, else position ``int(key)``; a ``ValueError`` naming the key otherwise."""
    key = str(key)
    for s in samples:
        if s.token == key:
            return s
    if key.lstrip("-").isdigit() and -len(samples) <= int(key) < len(samples):
        return samples[int(key)]
    raise ValueError(f"no sample with token or position {key!r} among {len(samples)} samples")


def load_samples(info=None, dataroot=None, version=None, num_sweeps=10):
    """Samples of the info/index file ``info`` (sensor paths resolved against ``dataroot``), else of an index
    of ``dataroot`` / ``version`` built on the fly into a temporary folder."""
    if info:
        return load_info_file(info, data_root=dataroot, num_sweeps=num_sweeps)
    if not (dataroot and version):
        raise ValueError("give an info file, or a dataroot and its version")

    with tempfile.TemporaryDirectory() as tmp:
        index = os.path.join(tmp, "index.pkl")
        build_index(dataroot, version, index, num_sweeps=num_sweeps, progress=False)
        return load_info_file(index, data_root=dataroot, num_sweeps=num_sweeps)
