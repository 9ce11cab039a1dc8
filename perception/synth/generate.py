"""Orchestration: write a complete synthetic nuScenes-format dataroot.

Layout written under ``out``: ``<version>/*.json`` (13 tables), ``samples/LIDAR_TOP/*.pcd.bin`` (keyframes),
``sweeps/LIDAR_TOP/*.pcd.bin``, ``samples/CAM_*/*.jpg`` (and ``sweeps/CAM_*/*.jpg`` with ``camera_sweeps``),
``maps/expansion/<location>.json`` + the map mask PNG, and Occ3D labels ``gts/<scene_name>/<sample_token>/labels.npz``.

Timing per scene: LiDAR keyframes at 2 Hz, ``sweeps_per_sample`` sweeps evenly spaced before each keyframe
(so every keyframe, the first included, has that many earlier sweeps); the six cameras fire 0.5-45.5 ms
before each keyframe (real nuScenes offsets, :data:`perception.synth.camera.CAMERA_OFFSET`) with their own
ego poses, and with ``camera_sweeps`` also before each LiDAR sweep (non-keyframe camera sample_data, like
nuScenes' 12 Hz camera sweeps; the keyframe files do not change), so that a node streaming the dataroot has
images near every LiDAR sweep. Timestamps are microseconds.
"""

import os
import time

import numpy as np
from PIL import Image

from perception.constants import CAMERA_NAMES
from perception.geometry import yaw_to_quat
from perception.synth import camera, lidar, occupancy
from perception.synth.backends import make_backend
from perception.synth.maps import build_map, write_map
from perception.synth.scene_names import scene_names
from perception.synth.tables import (
    chain_records,
    pose_record,
    token,
    visibility_token,
    vocabulary_tables,
    write_tables,
)
from perception.synth.world import normalize_world, write_world_record

KEYFRAME_INTERVAL = 0.5  # seconds (2 Hz)
ANNOTATION_RANGE = 60.0  # metres (xy from the ego) within which objects are annotated
SCENE_SPACING = 700.0  # metres between scene roads on the map canvas
BASE_TIMESTAMP = 1533201470000000  # microseconds (2018-08-02, like the n015 logs)
UNANNOTATED_VERSIONS = ("v1.0-test",)  # like the real test set: no annotations, no Occ3D labels


def scene_grid(scenes, samples_per_scene, world="v1"):
    """``(spacing m, columns, rows)`` of the scene origins on the map canvas: scene ``i`` sits at global
    ``(spacing (i % columns + 0.5), spacing (i // columns + 0.5))``. v2 streets reach ~300 m beyond the ego's
    path (margins, junction arms), so long v2 scenes get a wider spacing."""
    cols = int(np.ceil(np.sqrt(scenes)))
    version, params = normalize_world(world)
    spacing = SCENE_SPACING
    if version == "v2":
        spacing = max(SCENE_SPACING, 2 * (params.ego_speed_max * KEYFRAME_INTERVAL * samples_per_scene + 300.0))
    return spacing, cols, int(np.ceil(scenes / cols))


class _Writer:
    """Collects table records and writes sensor files for one dataset."""

    def __init__(self, out, seed, sweeps_per_sample, image_size, location, annotate=True, world="v1",
                 camera_sweeps=False):
        self.out, self.seed, self.annotate, self.camera_sweeps = out, seed, annotate, camera_sweeps
        self.world = make_backend(world)
        self.sweeps, self.size, self.location = sweeps_per_sample, image_size, location
        self.tables = {n: [] for n in ("calibrated_sensor", "ego_pose", "instance", "log", "sample",
                                       "sample_annotation", "sample_data", "scene", "sensor")}
        self.tables.update(vocabulary_tables())
        self.cat_token = {c["name"]: c["token"] for c in self.tables["category"]}
        self.attr_token = {a["name"]: a["token"] for a in self.tables["attribute"]}
        self.calib = {}  # channel -> calibrated_sensor token
        w, h = image_size
        for ch in ("LIDAR_TOP",) + CAMERA_NAMES:
            sensor_tok = token("sensor", ch)
            modality = "lidar" if ch == "LIDAR_TOP" else "camera"
            self.tables["sensor"].append({"token": sensor_tok, "channel": ch, "modality": modality})
            if ch == "LIDAR_TOP":
                tr, rot, K = lidar.LIDAR_TRANSLATION, lidar.LIDAR_ROTATION, []
            else:
                tr, rot, _ = camera.CAMERA_CALIBRATION[ch]
                K = camera.intrinsics(ch, w, h).tolist()
            self.calib[ch] = token(seed, "calibrated_sensor", ch, w, h)
            self.tables["calibrated_sensor"].append({"token": self.calib[ch], "sensor_token": sensor_tok,
                                                     "translation": list(tr), "rotation": list(rot),
                                                     "camera_intrinsic": K})
        cam_folders = [f"samples/{c}" for c in CAMERA_NAMES] + [f"sweeps/{c}" for c in CAMERA_NAMES if camera_sweeps]
        for folder in ["samples/LIDAR_TOP", "sweeps/LIDAR_TOP"] + cam_folders:
            os.makedirs(os.path.join(out, folder), exist_ok=True)

    def sample_data(self, tok, sample_tok, ch, ts, T_ego, filename, key, width=0, height=0):
        """Add a sample_data record and its ego_pose (same token, as in nuScenes)."""
        self.tables["ego_pose"].append(pose_record(tok, ts, T_ego))
        rec = {"token": tok, "sample_token": sample_tok, "ego_pose_token": tok,
               "calibrated_sensor_token": self.calib[ch], "timestamp": ts,
               "fileformat": "pcd" if ch == "LIDAR_TOP" else "jpg", "is_key_frame": key,
               "height": height, "width": width, "filename": filename}
        self.tables["sample_data"].append(rec)
        return rec

    def _image(self, sc, c, t_lidar, base_ts, logfile, tok, sample_tok, key, K, cam2ego, rng):
        """Camera ``c`` firing just before the LiDAR at ``t_lidar`` s (its real nuScenes offset, +-1.5 ms), with its
        own ego pose and world state: the JPEG (``samples/`` for a keyframe, else ``sweeps/``) and its
        sample_data record. Returns ``(record, actor id per pixel)``."""
        w, h = self.size
        t_c = float(t_lidar + camera.CAMERA_OFFSET[c] + rng.uniform(-0.0015, 0.0015))
        ts_c = base_ts + int(round(t_c * 1e6))
        ego_c = sc.ego_pose(t_c)
        img, ids = self.world.render(sc, self.world.sensor_boxes(sc, t_c), ego_c @ cam2ego, K, w, h, rng)
        fname = f"{'samples' if key else 'sweeps'}/{c}/{logfile}__{c}__{ts_c}.jpg"
        Image.fromarray(img).save(os.path.join(self.out, fname), quality=92)
        return self.sample_data(tok, sample_tok, c, ts_c, ego_c, fname, key, w, h), ids

    def scene(self, index, name, n_samples, origin):
        """Simulate and write one scene of ``n_samples`` keyframes; returns the :class:`Scene`."""
        seed, out = self.seed, self.out
        rng = np.random.default_rng([seed, index])
        n_sw = self.sweeps
        dt_sweep = KEYFRAME_INTERVAL / (n_sw + 1)
        key_times = KEYFRAME_INTERVAL * (1 + np.arange(n_samples))
        W = self.world
        sc = W.build(rng, name, origin, float(key_times[-1] + 0.1))
        base_ts = BASE_TIMESTAMP + index * 3_600_000_000 + seed * 86_400_000_000
        logfile = f"n015-synth-{seed}-{index:04d}+0800"
        log_tok, scene_tok = token(seed, "log", index), token(seed, "scene", index)
        self.tables["log"].append({"token": log_tok, "logfile": logfile, "vehicle": "n015",
                                   "date_captured": "2018-08-02", "location": self.location})

        labels_occ, annotated = W.labels(sc)
        l2e = lidar.lidar2ego()
        w, h = self.size
        Ks = {c: camera.intrinsics(c, w, h) for c in CAMERA_NAMES}
        c2e = {c: camera.cam2ego(c) for c in CAMERA_NAMES}
        samples, lidar_chain, cam_chains, tracks = [], [], {c: [] for c in CAMERA_NAMES}, {}
        for k, t_key in enumerate(key_times):
            sample_tok = token(seed, "sample", index, k)
            # LiDAR: the sweeps before this keyframe, then the keyframe itself.
            sweep_times = []  # (j, t s) of the LiDAR sweeps whose camera images follow the keyframe's
            for j in range(n_sw, -1, -1):
                t = float(t_key - j * dt_sweep)
                ts = base_ts + int(round(t * 1e6))
                ego = sc.ego_pose(t)
                points, hit, miss_dirs = W.scan(sc, W.sensor_boxes(sc, t), ego @ l2e, rng)
                folder = "samples" if j == 0 else "sweeps"
                fname = f"{folder}/LIDAR_TOP/{logfile}__LIDAR_TOP__{ts}.pcd.bin"
                points.tofile(os.path.join(out, fname))
                sd_tok = token(seed, "lidar", index, k, j)
                lidar_chain.append(self.sample_data(sd_tok, sample_tok, "LIDAR_TOP", ts, ego, fname, j == 0))
                if j > 0 and self.camera_sweeps:
                    sweep_times.append((j, t))
            key_ts, ego_key, boxes_key = ts, ego, sc.boxes_at(float(t_key))
            # Cameras: fire 0-50 ms before the LiDAR keyframe timestamp.
            cams_key, seen_in_image = [], np.zeros(len(sc.actors), dtype=bool)
            for c in CAMERA_NAMES:
                cam_tok = token(seed, "cam", index, k, c)
                rec, ids = self._image(sc, c, t_key, base_ts, logfile, cam_tok, sample_tok, True, Ks[c], c2e[c], rng)
                seen_in_image[ids[ids >= 0]] = True
                cam_chains[c].append(rec)
                cams_key.append((ego_key @ c2e[c], Ks[c], w, h))
            # Camera sweeps after the keyframe's images (in each chain they precede it), each from a random stream
            # of its own: the first keyframe render draws the scene's pixel-noise buffer from the scene's stream,
            # so the keyframe files are the same as without camera sweeps.
            for j, t in sweep_times:
                sweep_rng = np.random.default_rng([seed, index, k, j, 1])
                for c in CAMERA_NAMES:
                    tok = token(seed, "cam_sweep", index, k, j, c)
                    rec, _ = self._image(sc, c, t, base_ts, logfile, tok, sample_tok, False, Ks[c], c2e[c], sweep_rng)
                    cam_chains[c].insert(len(cam_chains[c]) - 1, rec)
            samples.append({"token": sample_tok, "timestamp": key_ts, "scene_token": scene_tok})
            if not self.annotate:  # v1.0-test: no annotations, no Occ3D labels
                continue
            # Annotations: actors near the ego that the LiDAR or a camera sees, with point counts and visibility.
            ego_xy = ego_key[:2, 3]
            near = np.nonzero(annotated & (np.hypot(*(boxes_key[:, :2] - ego_xy).T) < ANNOTATION_RANGE))[0]
            vis = W.visible(sc, boxes_key, float(t_key), near, cams_key)
            counts = W.counts(sc, points, hit, boxes_key, ego_key @ l2e)
            anns = []
            for i, v in zip(near, vis, strict=True):
                if counts[i] == 0 and not seen_in_image[i]:  # like nuScenes: unsensed objects are not annotated
                    continue
                a, b = sc.actors[i], boxes_key[i]
                ann = {"token": token(seed, "ann", index, k, i), "sample_token": sample_tok,
                       "instance_token": token(seed, "instance", index, i),
                       "visibility_token": visibility_token(float(v)),
                       "attribute_tokens": [self.attr_token[a.attribute]] if a.attribute else [],
                       "translation": b[:3].tolist(), "size": [b[4], b[3], b[5]],
                       "rotation": yaw_to_quat(b[6]).tolist(), "num_lidar_pts": int(counts[i]), "num_radar_pts": 0}
                anns.append(ann)
                tracks.setdefault(i, []).append(ann)
            self.tables["sample_annotation"] += anns
            # Occ3D labels in the ego frame at the keyframe.
            sem = occupancy.semantics(sc, boxes_key, labels_occ, ego_key)
            rays = np.concatenate([points[:, :3], miss_dirs * lidar.MAX_RANGE]).astype(np.float64)
            rng_ = np.linalg.norm(rays, axis=1)
            m_lidar = occupancy.lidar_mask(sem, l2e, rays / rng_[:, None], rng_)
            m_cam = occupancy.camera_mask(sem, [(c2e[c], Ks[c], w, h) for c in CAMERA_NAMES])
            occ_dir = os.path.join(out, "gts", name, sample_tok)
            os.makedirs(occ_dir, exist_ok=True)
            occupancy.save_labels(os.path.join(occ_dir, "labels.npz"), sem, m_lidar, m_cam)

        chain_records(samples)
        chain_records(lidar_chain)
        for c in CAMERA_NAMES:
            chain_records(cam_chains[c])
        self.tables["sample"] += samples
        for i, anns in sorted(tracks.items()):
            chain_records(anns)
            a = sc.actors[i]
            self.tables["instance"].append({"token": anns[0]["instance_token"],
                                            "category_token": self.cat_token[a.category],
                                            "nbr_annotations": len(anns), "first_annotation_token": anns[0]["token"],
                                            "last_annotation_token": anns[-1]["token"]})
        self.tables["scene"].append({"token": scene_tok, "log_token": log_tok, "nbr_samples": len(samples),
                                     "first_sample_token": samples[0]["token"],
                                     "last_sample_token": samples[-1]["token"],
                                     "name": name, "description": f"synthetic street scene (seed {seed})"})
        return sc


def _scene_job(job):
    """One scene in a worker process: ``(Scene, {table: the records it added})``. A scene's random stream
    depends on ``(seed, index)`` alone, so the files and records equal those of a sequential run."""
    writer_args, (index, name, n_samples, origin) = job
    writer = _Writer(*writer_args)
    before = {k: len(v) for k, v in writer.tables.items()}
    sc = writer.scene(index, name, n_samples, origin)
    return sc, {k: v[before[k]:] for k, v in writer.tables.items()}


def generate_dataset(out, scenes=2, samples_per_scene=4, seed=0, version="v1.0-trainval", sweeps_per_sample=4,
                     image_size=(640, 360), location="singapore-onenorth", workers=1, world="v2", split=None,
                     camera_sweeps=False):
    """Write a synthetic nuScenes-format dataroot to ``out`` and return a summary dict.

    Args:
        out: output folder (created; existing files with the same names are overwritten).
        scenes: number of scenes (>= 1); names come from the official ``version`` split lists.
        samples_per_scene: keyframes per scene (>= 2, 2 Hz).
        seed: the same arguments and seed write byte-identical files on one kind of CPU (docs/benchmarks.md).
        version: ``v1.0-trainval``, ``v1.0-mini`` or ``v1.0-test`` (test scene names, empty
            ``sample_annotation`` and ``instance`` tables and no Occ3D labels, like the real test set).
        sweeps_per_sample: LiDAR sweeps before each keyframe (0-19).
        image_size: ``(width, height)`` of the camera JPEGs (intrinsics scaled from 1600x900).
        location: nuScenes map name for the log table and ``maps/expansion/<location>.json``.
        workers: processes simulating scenes in parallel (the output does not depend on it).
        world: ``"v2"`` (the default), ``"v1"`` (the original world, whose classes have fixed intensities
            and colours) or a :class:`perception.synth.world.WorldParams` (v2 with those knobs); recorded
            with its knobs in ``<out>/synth_world.json``.
        split: ``None`` (~80 % train scenes, >= 1 val), ``"train"`` or ``"val"`` (every scene in that split:
            the learning benchmark's train / val / test datasets).
        camera_sweeps: also render the six cameras before every LiDAR sweep (``sweeps/CAM_*``), for streaming
            the dataroot to a node (``sensor_player``, ``perception replay``). Off by default: training and
            scoring read keyframes only, and the sweeps multiply the camera rendering by ``sweeps_per_sample + 1``.
            The keyframe files do not depend on it.

    Returns ``{"dataroot", "version", "scenes", "samples", "seconds"}``.
    """
    from nuscenes.map_expansion.map_api import locations
    from nuscenes.utils.splits import create_splits_logs  # noqa: F401  (fails early if the devkit is missing)

    t0 = time.time()
    if int(scenes) != scenes or scenes < 1:
        raise ValueError(f"scenes must be an integer >= 1, got {scenes!r}")
    if int(samples_per_scene) != samples_per_scene or samples_per_scene < 2:
        raise ValueError(f"samples_per_scene must be an integer >= 2, got {samples_per_scene!r}")
    if int(sweeps_per_sample) != sweeps_per_sample or not 0 <= sweeps_per_sample <= 19:
        raise ValueError(f"sweeps_per_sample must be an integer in [0, 19], got {sweeps_per_sample!r}")
    if len(image_size) != 2 or min(image_size) < 16 or max(image_size) > 4000:
        raise ValueError(f"image_size must be (width, height) with 16 <= each <= 4000, got {image_size!r}")
    if int(workers) != workers or workers < 1:
        raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
    if location not in locations:
        raise ValueError(f"location must be one of {locations}, got {location!r}")
    out = str(out)
    names = scene_names(version, int(scenes), np.random.default_rng(seed), split)
    world_version, params = normalize_world(world)
    writer_args = (out, seed, int(sweeps_per_sample), (int(image_size[0]), int(image_size[1])), location,
                   version not in UNANNOTATED_VERSIONS, params if world_version == "v2" else "v1", bool(camera_sweeps))
    writer = _Writer(*writer_args)
    spacing, cols, rows = scene_grid(scenes, samples_per_scene, world)
    jobs = [(i, name, int(samples_per_scene), (spacing * (i % cols + 0.5), spacing * (i // cols + 0.5)))
            for i, name in enumerate(names)]
    if workers == 1:
        built = [writer.scene(*job) for job in jobs]
    else:
        import multiprocessing

        built = []

        with multiprocessing.get_context("spawn").Pool(min(int(workers), len(jobs))) as pool:
            for sc, records in pool.imap(_scene_job, [(writer_args, job) for job in jobs]):  # in scene order
                built.append(sc)
                for table, recs in records.items():
                    writer.tables[table] += recs
    mask_file = f"maps/{token(seed, 'map-mask')}.png"
    map_json = build_map(built, seed, (spacing * cols, spacing * rows))
    write_map(out, location, map_json, mask_file)
    writer.tables["map"] = [{"token": token(seed, "map", location), "category": "semantic_prior", "filename": mask_file,
                             "log_tokens": [r["token"] for r in writer.tables["log"]]}]
    write_tables(out, version, writer.tables)
    write_world_record(out, world)
    return {"dataroot": out, "version": version, "scenes": len(names),
            "samples": len(writer.tables["sample"]), "seconds": time.time() - t0}
