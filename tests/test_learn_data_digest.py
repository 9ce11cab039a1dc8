"""benchmarks/learn_synthetic.py ``data_digest``: the fingerprint each benchmark summary keeps of its train, val
and test dataroots, so that rows trained or scored on different data are never mixed in one table."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from learn_synthetic import TEST_MARKER, data_digest  # noqa: E402


def _dataroot(root):
    (root / "samples" / "LIDAR_TOP").mkdir(parents=True)
    (root / "v1.0-trainval").mkdir()
    (root / "samples" / "LIDAR_TOP" / "a.pcd.bin").write_bytes(bytes(range(256)))
    (root / "v1.0-trainval" / "sample.json").write_text('[{"token": "t0"}]')
    return root


def test_same_bytes_same_digest_and_one_changed_byte_changes_it(tmp_path):
    a, b = _dataroot(tmp_path / "a"), _dataroot(tmp_path / "b")
    assert data_digest(a) == data_digest(b)
    data = bytearray((b / "samples" / "LIDAR_TOP" / "a.pcd.bin").read_bytes())
    data[17] ^= 1
    (b / "samples" / "LIDAR_TOP" / "a.pcd.bin").write_bytes(bytes(data))
    assert data_digest(a) != data_digest(b)


def test_a_renamed_file_changes_the_digest(tmp_path):
    a, b = _dataroot(tmp_path / "a"), _dataroot(tmp_path / "b")
    (b / "samples" / "LIDAR_TOP" / "a.pcd.bin").rename(b / "samples" / "LIDAR_TOP" / "b.pcd.bin")
    assert data_digest(a) != data_digest(b)


def test_the_index_and_the_test_marker_are_left_out(tmp_path):
    a, b = _dataroot(tmp_path / "a"), _dataroot(tmp_path / "b")
    (b / "m3_index_v1.0-trainval.pkl").write_bytes(b"built by training")
    (b / TEST_MARKER).write_text("reported by benchmarks/learn_synthetic.py only\n")
    assert data_digest(a) == data_digest(b)
