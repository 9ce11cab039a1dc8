"""Datasets for training and evaluation from the ``data`` config section.

Samples come from the project index (``perception.data.build_index``, one pickle per dataroot and version,
default ``<dataroot>/m3_index_<version>.pkl``, built when missing) or from explicit info files
(``data.train_info`` / ``data.val_info``), selected by official split name (``data.train_split`` /
``data.val_split``). Items are made by :class:`perception.data.dataset.M3Dataset` (augmented LiDAR frame).
"""

from functools import partial
from pathlib import Path

from perception.data import build_index, load_info_file
from perception.data.augment import bev_aug_params, image_aug_params
from perception.data.collate import modality_dropout
from perception.data.dataset import M3Dataset
from perception.data.nuscenes_index import default_index_path as index_path
from perception.training.distributed import DistContext, barrier


def default_index_path(data_cfg) -> Path:
    return Path(index_path(data_cfg["dataroot"], data_cfg["version"]))


def ensure_index(data_cfg, ctx: DistContext | None = None) -> Path:
    """The default index of the dataroot, built (by the main process; ``ctx`` None: a single process) when it
    does not exist yet."""
    ctx = ctx or DistContext()
    path = default_index_path(data_cfg)
    if not path.is_file():
        if not Path(data_cfg["dataroot"]).is_dir():
            raise FileNotFoundError(f"data.dataroot not found: {data_cfg['dataroot']}")
        if ctx.is_main:
            build_index(data_cfg["dataroot"], data_cfg["version"], path, num_sweeps=data_cfg["num_sweeps"])
        barrier(ctx)
    return path


def load_split(data_cfg, which: str, ctx: DistContext | None = None) -> list:
    """Samples of ``which`` ('train' or 'val'): the configured info file or the index, filtered by split name."""
    if which not in ("train", "val"):
        raise ValueError(f"which must be 'train' or 'val', got {which!r}")
    info = data_cfg[f"{which}_info"]
    split = data_cfg[f"{which}_split"]
    if info is not None:
        if not Path(info).is_file():
            raise FileNotFoundError(f"data.{which}_info not found: {info}")
        path = Path(info)
    else:
        path = ensure_index(data_cfg, ctx)
    samples = load_info_file(path, data_root=data_cfg["dataroot"], num_sweeps=data_cfg["num_sweeps"], split=split)
    if not samples:
        raise ValueError(f"no samples of split {split!r} in {path} (data.{which}_split)")
    return samples


def make_dataset(cfg, samples, training: bool, load_gt: bool = True):
    """:class:`M3Dataset` over ``samples`` with the config's cameras, image size, sweeps and augmentation.
    Dense GT is loaded only for enabled tasks ('map' -> BEV map, 'occ' -> occupancy in ``data.occ_format``, which
    the config's validation matched with the occupancy grid; ``M3Dataset`` refuses 'openocc' without
    ``data.openocc_root``); ``load_gt=False`` (inference) loads none."""
    data, tasks = cfg["data"], cfg["model"]["tasks"]
    load_occ = load_gt and "occ" in tasks
    return M3Dataset(
        samples,
        cameras=tuple(data["cameras"]),
        image_aug=image_aug_params(data),
        training=training,
        bev_aug=bev_aug_params(data),
        num_sweeps=int(data["num_sweeps"]),
        point_cloud_range=tuple(cfg["model"]["point_cloud_range"]),
        load_bev=load_gt and "map" in tasks,
        load_occ=load_occ,
        seed=int(cfg["train"]["seed"]),
        occ_format=data["occ_format"],
        openocc_root=data["openocc_root"],
    )


def _apply_dropout(batch, rng, probs, per_batch):
    return modality_dropout(batch, probs["all_cameras"], probs["some_cameras"], probs["lidar"], rng, per_batch)


def modality_dropout_transform(data_cfg):
    """``batch_transform(batch, numpy_rng)`` for :class:`Trainer`, or None when all probabilities are 0."""
    probs = {k: float(v) for k, v in data_cfg["modality_dropout"].items()}
    per_batch = data_cfg["modality_dropout_per"] == "batch"
    return partial(_apply_dropout, probs=probs, per_batch=per_batch) if any(probs.values()) else None
