"""Sensor readers and the Occ3D reader on real files."""

import numpy as np
import pytest

from perception.data import load_occ3d
from perception.data.io import load_points

OCC = "occ3d_cvpr2023_challenge/data/29796060110c4163b07f06eff4af0753/labels.npz"
PCD = ("mmdetection3d/tests/data/nuscenes/samples/LIDAR_TOP/"
       "n015-2018-08-02-17-16-37+0800__LIDAR_TOP__1533201470948018.pcd.bin")


def test_load_points_real_and_bad_files(real_dir, tmp_path):
    points = load_points(real_dir / PCD)
    assert points.shape == (100, 5) and points.dtype == np.float32
    assert 0 <= points[:, 3].min() and points[:, 4].max() <= 31  # intensity, ring
    truncated = tmp_path / "cut.pcd.bin"
    truncated.write_bytes((real_dir / PCD).read_bytes()[:-8])
    with pytest.raises(ValueError, match=r"cut\.pcd\.bin.*sample tok1.*not a multiple of 20"):
        load_points(truncated, sample_token="tok1")
    with pytest.raises(FileNotFoundError, match=r"nothere\.pcd\.bin"):
        load_points(tmp_path / "nothere.pcd.bin")


def test_occ3d_reader_on_real_labels(real_dir):
    occ = load_occ3d(real_dir / OCC)
    assert occ.semantics.shape == (200, 200, 16) and occ.semantics.dtype == np.uint8
    counts = occ.class_counts()
    assert (counts[17], counts[16], counts[11], counts[13], counts[4], counts[15]) == \
        (600908, 18699, 8433, 2610, 1749, 5286)
    assert occ.mask_lidar.sum() == 56601 and occ.mask_camera.sum() == 43355


def test_occ3d_reader_names_bad_fields(real_dir, tmp_path):
    good = dict(np.load(real_dir / OCC))
    bad = tmp_path / "labels.npz"
    np.savez(bad, **dict(good, mask_camera=good["mask_camera"][:, :, :8]))
    with pytest.raises(ValueError, match=r"labels\.npz.*'mask_camera'.*shape"):
        load_occ3d(bad)
    np.savez(bad, **dict(good, semantics=good["semantics"].astype(np.int32)))
    with pytest.raises(ValueError, match=r"'semantics'.*dtype"):
        load_occ3d(bad)
    sem = good["semantics"].copy()
    sem[0, 0, 0] = 18
    np.savez(bad, **dict(good, semantics=sem))
    with pytest.raises(ValueError, match=r"'semantics'.*18"):
        load_occ3d(bad)
