"""The start-of-training label guard (perception.training.label_check): a task without labels for most
training samples stops training with an error naming the task and the cause; a partial one warns."""

import numpy as np
import pytest

from perception.data.sample import Sample
from perception.training.label_check import check_label_coverage, label_coverage


def _sample(tmp_path, i, boxes=True, bev=True, occ=True):
    occ_path = tmp_path / f"gts/scene-0001/{i}/labels.npz"
    if occ:
        occ_path.parent.mkdir(parents=True, exist_ok=True)
        occ_path.write_bytes(b"x")
    return Sample(
        token=f"t{i}", lidar_path="x.bin", lidar2ego=np.eye(4), ego2global=np.eye(4),
        labels=np.zeros(3 if boxes else 0, np.int64), occ_path=str(occ_path),
        _bev_map_fn=(lambda s: None) if bev else None,
    )


def test_complete_labels_pass_silently(tmp_path):
    samples = [_sample(tmp_path, i) for i in range(4)]
    assert label_coverage(samples, ("det", "map", "occ")) == {"det": 4, "map": 4, "occ": 4}
    assert check_label_coverage(samples, ("det", "map", "occ")) == []


def test_missing_gts_folder_refuses_to_train_occupancy(tmp_path):
    samples = [_sample(tmp_path, i, occ=False) for i in range(4)]  # index says labels.npz, the file is gone
    with pytest.raises(ValueError, match=r"task 'occ': 0/4 samples have occupancy labels.*stale index"):
        check_label_coverage(samples, ("det", "occ"))
    assert check_label_coverage(samples, ("det",)) == []  # a detection-only model does not need them


def test_missing_map_expansion_refuses_and_names_the_file(tmp_path):
    samples = [_sample(tmp_path, i, bev=i == 0) for i in range(4)]
    with pytest.raises(ValueError, match=r"task 'map': 1/4 samples have BEV map rasters \(maps/expansion"):
        check_label_coverage(samples, ("map",))


def test_partial_labels_warn_per_task(tmp_path):
    samples = [_sample(tmp_path, i, boxes=i != 0, occ=i != 1) for i in range(4)]
    lines = check_label_coverage(samples, ("det", "map", "occ"))
    assert len(lines) == 2
    assert lines[0].startswith("task 'det': only 3/4") and lines[1].startswith("task 'occ': only 3/4")


def test_openocc_labels_are_looked_up_under_the_root(tmp_path):
    s = _sample(tmp_path, 0, occ=False)
    s.scene_token, s.lidar_token = "sc", "li"
    assert label_coverage([s], ("occ",), "openocc", str(tmp_path)) == {"occ": 0}
    (tmp_path / "scene_sc/occupancy").mkdir(parents=True)
    (tmp_path / "scene_sc/occupancy/li.npy").write_bytes(b"x")
    assert label_coverage([s], ("occ",), "openocc", str(tmp_path)) == {"occ": 1}
