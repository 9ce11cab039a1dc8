"""Occupancy head: a BEV channel-to-height lift plus the decoder's column queries, sampled on the target grid.

Two height-resolved feature volumes over the ``point_cloud_range`` heights, both x-first ``(B, C, Z, X, Y)``
in the augmented LiDAR frame:

- the *BEV lift* (FlashOcc's channel-to-height): a 1x1 conv maps each cell of the gated occ BEV
  (``bev_cell`` metres) to ``bev_height_bins x C`` features, so a BEV cell can say "car from 0 to 1.7 m,
  ground below" at the full BEV resolution;
- the *query volume* (M3Net's occupancy queries): each query output of the shared decoder (a BEV column of
  the coarse query grid) is mapped by a Linear to ``height_bins x C`` features.

The logits of a target voxel = MLP(trilinear sample of both volumes at the voxel centre [, the voxel's LiDAR
cues: :mod:`perception.models.heads.occ_lidar_cues`, when ``cue_channels`` > 0]), the centre mapped into the
augmented LiDAR frame (``A @ inv(lidar2ego) @ p`` for Occ3D's ego grid).
"""

from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from perception.models.heads.bev_sampling import sample_volume
from perception.models.heads.trilinear_numba import NUMBA_AVAILABLE, sample_volume_numba
from perception.models.losses.lovasz import lovasz_softmax_flat
from perception.models.losses.scene_affinity import geo_scal_loss, sem_scal_loss


class OccLogits(NamedTuple):
    """What :class:`OccHead` returns: ``base`` ``(B, num_classes, NX, NY, NZ)`` the logits of the BEV features (the
    BEV network's occupancy loss is on these); ``refined`` the same shape corrected by the cue refiner, or None
    without it."""

    base: torch.Tensor
    refined: torch.Tensor | None


class OccHead(nn.Module):
    """``forward(query (B, Xq*Yq, d), query_shape (Xq, Yq), occ_bev (B, d, X, Y), points (B, NX, NY, NZ, 3)[, cues])
    -> OccLogits(base, refined)``, each ``(B, num_classes, NX, NY, NZ)`` (``refined`` None without the refiner).

    ``height_bins``: bins of the query volume; ``bev_height_bins``: bins of the BEV lift (0 disables it);
    ``channels``: features per bin; ``hidden``: width of the voxel MLP.

    ``cue_channels`` > 0 adds the cue refiner (``cues (B, cue_channels, NX, NY, NZ)`` in ``forward``): a second
    MLP reads the voxel's LiDAR cues beside the (detached) sampled features and logits and adds a correction to
    the logits (``OccLogits.refined``). Nothing flows back from the
    correction into the BEV network: the BEV features keep learning occupancy on their own (their loss is on
    ``logits``), which also supervises where the objects are for detection; with the cues in the first layer
    instead, the network leaned on them and detection learned markedly slower (docs/benchmarks.md).
    The refiner is built under a forked RNG and its last layer starts at zero: switching it on leaves every
    other layer's initial weights as they were, and it starts as the identity on the logits.
"""

    def __init__(self, d_model, point_cloud_range, num_classes, height_bins=8, channels=32, bev_height_bins=16,
                 hidden=64, cue_channels=0, cue_hidden=64):
        super().__init__()
        self.pc_range, self.height_bins, self.channels = list(point_cloud_range), height_bins, channels
        self.bev_height_bins = int(bev_height_bins)
        self.lift = nn.Linear(d_model, height_bins * channels)
        if self.bev_height_bins > 0:
            self.bev_lift = nn.Sequential(
                nn.Conv2d(d_model, d_model, 3, padding=1), nn.BatchNorm2d(d_model), nn.ReLU(inplace=True),
                nn.Conv2d(d_model, self.bev_height_bins * channels, 1),
            )
        self.mlp = nn.Sequential(nn.Conv1d(channels, hidden, 1), nn.ReLU(inplace=True),
                                 nn.Conv1d(hidden, hidden, 1), nn.ReLU(inplace=True), nn.Conv1d(hidden, num_classes, 1))
        self.cue_channels = int(cue_channels)
        self.cue_refiner = None
        if self.cue_channels:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                self.cue_refiner = nn.Sequential(
                    nn.Conv1d(channels + num_classes + self.cue_channels, cue_hidden, 1), nn.ReLU(inplace=True),
                    nn.Conv1d(cue_hidden, cue_hidden, 1), nn.ReLU(inplace=True), nn.Conv1d(cue_hidden, num_classes, 1),
                )
            nn.init.zeros_(self.cue_refiner[-1].weight)
            nn.init.zeros_(self.cue_refiner[-1].bias)

    # Voxels per step of the inference fast path (:meth:`_mlps_chunked`): the (chunk, hidden) activations stay
    # in the CPU's cache instead of streaming (hidden, 640k) tensors through memory between layers.
    INFERENCE_CHUNK = 8192

    def _use_fast_path(self, feat):
        return (not self.training and not torch.is_grad_enabled() and feat.device.type == "cpu"
                and not torch.jit.is_tracing() and not torch.onnx.is_in_onnx_export())

    @staticmethod
    def _linear_layers(seq):
        return [(m.weight[:, :, 0], m.bias) for m in seq if isinstance(m, nn.Conv1d)]

    def _mlps_chunked(self, feat_t, cues):
        """Inference on CPU: the voxel MLP (and the cue refiner) over chunks of voxels, channels-last
        (``feat_t (B, P, C)``, any strides).

        The same per-voxel arithmetic as the ``Conv1d`` stacks (a 1x1 Conv1d is a Linear per voxel; equal up
        to float rounding, ``tests/test_speed_equivalence.py``). Returns ``(logits, refined or None)``
        ``(B, K, P)`` as transposed views of channels-last ``(B, P, K)`` storage (the decoder's argmax over K
        then reads contiguous memory)."""
        b, p, _ = feat_t.shape
        feat = feat_t
        mlp = self._linear_layers(self.mlp)
        refiner = self._linear_layers(self.cue_refiner) if self.cue_refiner is not None else None
        k = mlp[-1][0].shape[0]
        base = feat.new_empty(b, p, k)
        refined = feat.new_empty(b, p, k) if refiner is not None else None
        cues_t = cues.reshape(b, self.cue_channels, -1).transpose(1, 2) if refiner is not None else None
        step = self.INFERENCE_CHUNK
        for i in range(b):
            for s in range(0, p, step):
                x = feat_t[i, s:s + step].contiguous()
                h = x
                for j, (w, bias) in enumerate(mlp):
                    h = F.linear(h, w, bias)
                    if j < len(mlp) - 1:
                        h = h.relu_()
                base[i, s:s + step] = h
                if refiner is not None:
                    r = torch.cat([x, h, cues_t[i, s:s + step].to(x.dtype)], dim=1)
                    for j, (w, bias) in enumerate(refiner):
                        r = F.linear(r, w, bias)
                        if j < len(refiner) - 1:
                            r = r.relu_()
                    refined[i, s:s + step] = h + r
        return base.transpose(1, 2), (refined.transpose(1, 2) if refined is not None else None)

    def _forward_fast(self, vol, occ_bev, points, cues):
        """CPU inference: both volumes sampled by the numba kernel into one channels-last ``(B, P, C)`` sum
        (:mod:`perception.models.heads.trilinear_numba`), then :meth:`_mlps_chunked`."""
        b = vol.shape[0]
        grid_shape = points.shape[1:-1]
        feat_t = sample_volume_numba(vol, points, self.pc_range)
        if self.bev_height_bins > 0:
            nx, ny = occ_bev.shape[-2:]
            lifted = self.bev_lift(occ_bev).reshape(b, self.channels, self.bev_height_bins, nx, ny)
            sample_volume_numba(lifted, points, self.pc_range, out=feat_t)
        if self.cue_refiner is not None and (cues is None or cues.shape[1] != self.cue_channels):
            raise ValueError(f"OccHead: expected cues (B, {self.cue_channels}, ...), "
                             f"got {None if cues is None else tuple(cues.shape)}")
        return self._finish_fast(feat_t, cues, grid_shape)

    def _finish_fast(self, feat_t, cues, grid_shape):
        b = feat_t.shape[0]
        logits, refined = self._mlps_chunked(feat_t, cues)  # (B, K, P) each (refined None without the refiner)
        return OccLogits(logits.reshape(b, -1, *grid_shape),
                         None if refined is None else refined.reshape(b, -1, *grid_shape))

    def forward(self, query, query_shape, occ_bev, points, cues=None):
        b = query.shape[0]
        nxq, nyq = query_shape
        vol = self.lift(query).reshape(b, nxq, nyq, self.height_bins, self.channels).permute(0, 4, 3, 1, 2)
        if self._use_fast_path(vol) and NUMBA_AVAILABLE and points.dtype == torch.float32:
            return self._forward_fast(vol, occ_bev, points, cues)
        feat = sample_volume(vol, points, self.pc_range)
        if self.bev_height_bins > 0:
            nx, ny = occ_bev.shape[-2:]
            lifted = self.bev_lift(occ_bev).reshape(b, self.channels, self.bev_height_bins, nx, ny)
            feat = feat + sample_volume(lifted, points, self.pc_range)
        grid_shape = points.shape[1:-1]
        feat = feat.reshape(b, self.channels, -1)
        if self.cue_refiner is not None and (cues is None or cues.shape[1] != self.cue_channels):
            raise ValueError(f"OccHead: expected cues (B, {self.cue_channels}, ...), "
                             f"got {None if cues is None else tuple(cues.shape)}")
        if self._use_fast_path(feat):
            return self._finish_fast(feat.transpose(1, 2), cues, grid_shape)
        logits = self.mlp(feat)
        if self.cue_refiner is None:
            return OccLogits(logits.reshape(b, -1, *grid_shape), None)
        if cues is None or cues.shape[1] != self.cue_channels:
            raise ValueError(f"OccHead: expected cues (B, {self.cue_channels}, ...), "
                             f"got {None if cues is None else tuple(cues.shape)}")
        base = logits.detach()
        x = torch.cat([feat.detach(), base, cues.reshape(b, self.cue_channels, -1).to(feat.dtype)], dim=1)
        refined = base + self.cue_refiner(x)
        return OccLogits(logits.reshape(b, -1, *grid_shape), refined.reshape(b, -1, *grid_shape))


def occ_losses(logits, labels, mask, class_weights, free_index, ignore_index):
    """``(ce, lovasz, affinity)`` over the voxels where ``mask`` is True and the label is not ``ignore_index``.

    ``logits`` ``(B, C, NX, NY, NZ)``; ``labels`` int64 and ``mask`` bool ``(B, NX, NY, NZ)``; class-weighted
    cross-entropy (weighted mean); Lovasz-softmax; MonoScene semantic + geometric scale-affinity.
    """
    keep = mask & (labels != ignore_index)
    flat_logits = logits.permute(0, 2, 3, 4, 1)[keep]  # (P, C)
    flat_labels = labels[keep]
    if flat_labels.numel() == 0:
        zero = logits.sum() * 0.0
        return zero, zero, zero
    if int(flat_labels.max()) >= logits.shape[1] or int(flat_labels.min()) < 0:
        raise ValueError(f"gt_occ: labels outside [0, {logits.shape[1]}) (ignore_index {ignore_index})")
    ce = F.cross_entropy(flat_logits, flat_labels, weight=class_weights)
    probs = flat_logits.softmax(-1)
    affinity = sem_scal_loss(probs, flat_labels) + geo_scal_loss(probs, flat_labels, free_index)
    return ce, lovasz_softmax_flat(probs, flat_labels), affinity
