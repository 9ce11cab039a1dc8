"""Batching (:func:`collate`) and modality dropout (:func:`modality_dropout`).

:func:`to_device` moves a batch to the model's device (training and the runtime share it).

:func:`collate` turns the item dicts of :class:`perception.data.dataset.M3Dataset` into the training batch of
``docs/architecture.md`` (keys, dtypes and shapes exactly as its table): variable-size data (points, GT boxes,
labels, meta) stay lists of length B, everything else is stacked into tensors with a leading batch axis.
"""

import numpy as np
import torch

# key -> torch dtype of the stacked tensor (batch axis first).
STACKED = {
    "lidar_mask": torch.bool,
    "images": torch.float32,
    "cam_mask": torch.bool,
    "intrinsics": torch.float32,
    "lidar2cam": torch.float32,
    "lidar2img": torch.float32,
    "img_aug": torch.float32,
    "bev_aug": torch.float32,
    "lidar2ego": torch.float32,
    "gt_bev": torch.float32,
    "gt_bev_valid": torch.bool,
    "gt_occ": torch.int64,
    "gt_occ_mask": torch.bool,
    "gt_occ_valid": torch.bool,
}
# key -> dtype of each list element.
LISTED = {"points": torch.float32, "gt_boxes": torch.float32, "gt_labels": torch.int64}


def collate(items):
    """List of B item dicts -> batch dict (see ``docs/architecture.md``). ``meta`` stays a list of dicts.
    Items without any ``gt_*`` key (inference) give a batch without ground truth."""
    if not items:
        raise ValueError("collate: empty list of items")
    # Inference items (``inference_item``) carry no ground truth: the GT keys may be absent from all items.
    gt_free = not any(k.startswith("gt_") for k in items[0])
    required = [k for k in (*STACKED, *LISTED, "meta") if not (gt_free and k.startswith("gt_"))]
    missing = [k for k in required if any(k not in it for it in items)]
    if missing:
        raise ValueError(f"collate: items lack keys {missing}")
    batch = {k: torch.stack([torch.as_tensor(np.asarray(it[k])) for it in items]).to(dt)
             for k, dt in STACKED.items() if k in required}
    batch.update({k: [torch.as_tensor(np.asarray(it[k])).to(dt) for it in items]
                  for k, dt in LISTED.items() if k in required})
    batch["meta"] = [it["meta"] for it in items]
    return batch


def to_device(batch, device):
    """Tensors (also inside lists / dicts) to ``device``; other values unchanged."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, list):
        return [to_device(v, device) for v in batch]
    return batch


def modality_dropout(batch, p_drop_all_cameras, p_drop_some_cameras, p_drop_lidar, rng, per_batch=False):
    """Randomly mask modalities per sample, returning a new batch (the input is not modified).

    Per sample one draw ``u ~ U(0, 1)`` picks at most one event, in this order of probability mass:
    drop the LiDAR (``p_drop_lidar``: ``lidar_mask`` False, points emptied), drop all cameras
    (``p_drop_all_cameras``), drop a random non-empty proper subset of the valid cameras
    (``p_drop_some_cameras``). Dropped cameras get ``cam_mask`` False and zero images. A drop that would
    leave the sample with neither LiDAR nor any camera is skipped, so every sample keeps a modality.
    ``per_batch``: one draw for the whole batch (the same event, and the same camera subset where the samples
    have the same cameras), so that every sample of a batch is in one sensor condition and a BatchNorm layer's
    batch statistics are that condition's. ``rng``: ``numpy.random.Generator``.
    """
    probs = {"p_drop_all_cameras": p_drop_all_cameras, "p_drop_some_cameras": p_drop_some_cameras,
             "p_drop_lidar": p_drop_lidar}
    for name, p in probs.items():
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"modality_dropout: {name} must be in [0, 1], got {p}")
    if sum(probs.values()) > 1.0 + 1e-9:
        raise ValueError(f"modality_dropout: probabilities must sum to <= 1, got {probs}")
    out = dict(batch)
    out["lidar_mask"] = batch["lidar_mask"].clone()
    out["cam_mask"] = batch["cam_mask"].clone()
    out["images"] = batch["images"].clone()
    out["points"] = list(batch["points"])
    # per batch: one u, and one seed for the camera subset, shared by every sample
    batch_u, subset_seed = (rng.random(), int(rng.integers(2**31))) if per_batch else (None, None)
    for b in range(len(out["points"])):
        cams = torch.nonzero(out["cam_mask"][b]).flatten().tolist()
        has_lidar = bool(out["lidar_mask"][b])
        u = batch_u if per_batch else rng.random()
        subset_rng = np.random.default_rng(subset_seed) if per_batch else rng
        drop = []
        if u < p_drop_lidar:
            if cams:
                out["lidar_mask"][b] = False
                out["points"][b] = out["points"][b][:0]
        elif u < p_drop_lidar + p_drop_all_cameras:
            drop = cams if has_lidar else []
        elif u < p_drop_lidar + p_drop_all_cameras + p_drop_some_cameras and len(cams) > 1:
            k = int(subset_rng.integers(1, len(cams)))  # 1 .. len(cams) - 1: at least one camera stays
            drop = [int(c) for c in subset_rng.choice(cams, size=k, replace=False)]
        for c in drop:
            out["cam_mask"][b, c] = False
            out["images"][b, c] = 0.0
    return out
