"""The live frame assembly (sweeps, cameras, motion compensation) against the offline data layer, on a real
nuScenes-format dataroot: fed the scene's messages one by one, the assembler must rebuild exactly the points
and camera calibration that the index + ``load_points_with_sweeps`` build for each keyframe."""

import numpy as np
import pytest

from perception.data import build_index, load_info_file
from perception.data.io import load_image, load_points, load_points_with_sweeps
from perception.data.scene_stream import SceneStream
from perception.geometry import make_transform, yaw_to_quat
from perception.ros.calibration import RigCalibration
from perception.runtime.assembler import FrameAssembler
from perception.runtime.poses import PoseBuffer

NUM_SWEEPS = 2


def pose(yaw, xyz):
    return make_transform(yaw_to_quat(yaw), xyz)


def test_pose_buffer_interpolates_and_never_extrapolates():
    buf = PoseBuffer(max_gap_s=1.0)
    buf.add(2_000_000_000, pose(0.4, [2.0, 4.0, 0.0]))
    buf.add(1_000_000_000, pose(0.0, [0.0, 0.0, 0.0]))  # out of order: inserted in place
    mid = buf.at(1_500_000_000)
    np.testing.assert_allclose(mid, pose(0.2, [1.0, 2.0, 0.0]), atol=1e-12)
    np.testing.assert_array_equal(buf.at(2_000_000_000), pose(0.4, [2.0, 4.0, 0.0]))
    assert buf.at(999_999_999) is None and buf.at(2_000_000_001) is None
    buf.add(5_000_000_000, pose(0.0, [9.0, 0.0, 0.0]))  # a 3 s gap: no interpolation across it
    assert buf.at(3_000_000_000) is None
    with pytest.raises(ValueError, match="finite 4x4"):
        buf.add(6, np.full((4, 4), np.nan))


@pytest.fixture(scope="module")
def scene(synth_root):
    index = str(synth_root / "assembler_index.pkl")
    build_index(str(synth_root), "v1.0-trainval", index, num_sweeps=NUM_SWEEPS, progress=False)
    samples = {s.token: s for s in load_info_file(index, data_root=str(synth_root), num_sweeps=NUM_SWEEPS)}
    stream = SceneStream(str(synth_root), "v1.0-trainval")
    return stream, samples


def test_assembled_frames_equal_the_offline_samples(scene):
    stream, samples = scene
    calib = RigCalibration(**stream.calibration())
    cameras = tuple(calib.lidar2cam)
    assembler = FrameAssembler(calib, cameras, NUM_SWEEPS, max_camera_lidar_delay_s=0.12)
    records = stream.records()
    checked, pending = 0, None

    def check(key):
        sample = samples[key.sample_token]
        frame, status = assembler.assemble(key.stamp_ns, load_points(key.path)[:, :4])
        # Points: keyframe then the NUM_SWEEPS newest sweeps moved into the keyframe frame, with time lags.
        expected = load_points_with_sweeps(sample, NUM_SWEEPS)
        assert frame.points.shape == expected.shape and status.sweeps_used == NUM_SWEEPS
        np.testing.assert_allclose(frame.points, expected, atol=1e-4)
        np.testing.assert_allclose(frame.lidar2ego, sample.lidar2ego, atol=1e-12)
        np.testing.assert_allclose(frame.ego2world, sample.ego2global, atol=1e-9)  # the map memory's pose
        # Cameras: the keyframe's images, with the LiDAR(t_lidar) -> camera(t_cam) chain through both ego poses.
        assert set(frame.cameras) == set(sample.cameras) and status.cameras == {c: "ok" for c in cameras}
        for name, cam in frame.cameras.items():
            view = sample.cameras[name]
            np.testing.assert_allclose(cam.lidar2cam, view.lidar2cam, atol=1e-9)
            np.testing.assert_allclose(cam.intrinsics, view.intrinsics)
            np.testing.assert_array_equal(cam.image, view.image)

    for rec in records:
        # A keyframe is assembled once the messages up to 60 ms after it (its cameras, its pose) have arrived.
        if pending is not None and rec.timestamp_us > pending.timestamp_us + 60_000:
            check(pending)
            checked, pending = checked + 1, None
        assembler.add_pose(rec.stamp_ns, rec.ego2global)
        if rec.is_lidar:
            assembler.add_sweep(rec.stamp_ns, load_points(rec.path)[:, :4])
            pending = rec if rec.is_key_frame else pending
        else:
            assembler.add_camera(rec.channel, rec.stamp_ns, load_image(rec.path), rec.intrinsics)
    if pending is not None:
        check(pending)
        checked += 1
    assert checked == len([r for r in records if r.is_lidar and r.is_key_frame]) >= 4


def test_stale_cameras_and_missing_poses_degrade_with_notes(scene):
    stream, _ = scene
    calib = RigCalibration(**stream.calibration())
    assembler = FrameAssembler(calib, ("CAM_FRONT",), NUM_SWEEPS, max_camera_lidar_delay_s=0.12)
    lidar = [r for r in stream.records() if r.is_lidar]
    cam = next(r for r in stream.records() if r.channel == "CAM_FRONT")
    # 0.2 s old
    assembler.add_camera("CAM_FRONT", lidar[2].stamp_ns - 200_000_000, load_image(cam.path), cam.intrinsics)
    for rec in lidar[:3]:  # sweeps but no poses at all
        assembler.add_sweep(rec.stamp_ns, load_points(rec.path)[:, :4])
    pts = load_points(lidar[2].path)[:, :4]
    frame, status = assembler.assemble(lidar[2].stamp_ns, pts)
    assert status.cameras == {"CAM_FRONT": "stale"} and frame.cameras == {}
    assert len(frame.points) == len(pts) and status.sweeps_used == 0  # current sweep only
    assert frame.ego2world is None  # no pose known: the map memory starts over
    assert any("no ego pose" in n for n in frame.notes) and any("CAM_FRONT" in n for n in frame.notes)
    # a sensor that is flowing but behind the LiDAR stamp is what a caller may briefly wait for
    assembler.add_pose(lidar[1].stamp_ns, lidar[1].ego2global)
    assert set(assembler.waiting_on(lidar[2].stamp_ns)) == {"pose", "CAM_FRONT"}
    with pytest.raises(ValueError, match="lidar2cam"):
        FrameAssembler(RigCalibration(lidar2ego=np.eye(4), lidar2cam={}), ("CAM_FRONT",), 1)


def test_a_frame_assembled_late_still_gets_its_past_sweeps(scene):
    """The node assembles a frame after its worker was busy: newer sweeps have arrived by then. The frame must
    still merge the sweeps before its own stamp (not the newest ones, not none)."""
    stream, samples = scene
    calib = RigCalibration(**stream.calibration())
    assembler = FrameAssembler(calib, (), NUM_SWEEPS)
    lidar = [r for r in stream.records() if r.is_lidar]
    for rec in lidar:  # the whole scene arrives before the first keyframe with past sweeps is assembled
        assembler.add_pose(rec.stamp_ns, rec.ego2global)
        assembler.add_sweep(rec.stamp_ns, load_points(rec.path)[:, :4])
    key = next(r for r in lidar if r.is_key_frame and r is not lidar[0])
    frame, status = assembler.assemble(key.stamp_ns, load_points(key.path)[:, :4])
    assert status.sweeps_used == NUM_SWEEPS
    np.testing.assert_allclose(frame.points, load_points_with_sweeps(samples[key.sample_token], NUM_SWEEPS), atol=1e-4)


def test_sweep_move_fast_path_equals_the_reference():
    from perception.runtime.assembler import _move_sweep, move_sweep_reference

    rng = np.random.default_rng(1)
    points = rng.uniform(-60, 60, (34720, 4)).astype(np.float32)
    T = pose(0.7, [3.0, -2.0, 0.1])
    R, t = T[:3, :3].astype(np.float32), T[:3, 3].astype(np.float32)
    fast, ref = np.empty((len(points), 5), np.float32), np.empty((len(points), 5), np.float32)
    _move_sweep(points, R, t, np.float32(0.25), fast)
    move_sweep_reference(points, R, t, np.float32(0.25), ref)
    np.testing.assert_allclose(fast, ref, rtol=0, atol=1e-5)  # float32 sums: last-bit differences only
    assert (fast[:, 3:] == ref[:, 3:]).all()
