"""Scene names for a synthetic dataroot: drawn from the official nuScenes split lists, so that the devkit's
``create_splits_scenes`` puts each scene in the split it was made for."""

from nuscenes.utils import splits

from perception.data.nuscenes_index import VERSION_SPLITS

SUPPORTED_VERSIONS = VERSION_SPLITS  # version -> its official splits (v1.0-trainval, v1.0-mini, v1.0-test)


def scene_names(version, n_scenes, rng, split=None):
    """Official split scene names for ``n_scenes`` scenes: ~80 % train, at least one val (sorted, unique);
    all from the ``test`` split for v1.0-test. ``split`` ``'train'`` / ``'val'``: all from that split."""
    if version not in SUPPORTED_VERSIONS:
        raise ValueError(f"version must be one of {sorted(SUPPORTED_VERSIONS)}, got {version!r}")
    if split not in (None, "train", "val"):
        raise ValueError(f"split must be None, 'train' or 'val', got {split!r}")
    if split is not None and len(SUPPORTED_VERSIONS[version]) == 1:
        raise ValueError(f"split={split!r}: {version} has only the {SUPPORTED_VERSIONS[version][0]!r} split")
    if len(SUPPORTED_VERSIONS[version]) == 1:
        names = getattr(splits, SUPPORTED_VERSIONS[version][0])
        if n_scenes > len(names):
            raise ValueError(f"scenes={n_scenes} exceeds the {version} split size ({len(names)})")
        return sorted(rng.choice(names, n_scenes, replace=False).tolist())
    train_split, val_split = SUPPORTED_VERSIONS[version]
    n_val = {None: max(1, int(round(0.2 * n_scenes))), "train": 0, "val": n_scenes}[split]
    n_train = n_scenes - n_val
    train_names, val_names = getattr(splits, train_split), getattr(splits, val_split)
    if n_train > len(train_names) or n_val > len(val_names):
        raise ValueError(f"scenes={n_scenes} exceeds the {version} split sizes ({len(train_names)} + {len(val_names)})")
    train = sorted(rng.choice(train_names, n_train, replace=False).tolist()) if n_train else []
    val = sorted(rng.choice(val_names, n_val, replace=False).tolist())
    return train + val
