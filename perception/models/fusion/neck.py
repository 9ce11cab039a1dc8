"""Fused BEV neck: LiDAR + camera BEV maps -> fusion (MAFI or conv) -> SECOND backbone + FPN -> per task.

Inputs and outputs are ``(B, C, X, Y)`` x-first maps in the augmented LiDAR frame on the same grid.
A missing modality (mask False for a sample, or ``None`` for the whole batch) is replaced by zeros and its
MAFI weights are zeroed, so the output for that sample does not depend on it.
"""

import torch
from torch import nn

from perception.constants import TASKS
from perception.models.bev.second import SECONDFPN
from perception.models.fusion.mafi import MAFI, ConvFuser


class FusedBEVNeck(nn.Module):
    """``forward(lidar_bev, camera_bev, lidar_mask, camera_mask) -> dict task -> (B, out_channels, X, Y)``.

    ``lidar_channels`` / ``camera_channels``: channels of the encoders' maps (0 or None when that encoder is
    disabled: then ``None`` must be passed for it). The SECOND backbone (``backbone_channels`` stages of
    ``backbone_layers`` conv blocks at strides 1 and 2, up-sampled and concatenated) is applied once to the
    fused map; with ``fusion='mafi'`` the per-task weights are applied after it, with ``'conv'`` every task
    gets the same map. X and Y must be even.
    """

    def __init__(
        self,
        lidar_channels,
        camera_channels,
        out_channels,
        tasks,
        fusion="mafi",
        fused_channels=256,
        backbone_channels=(128, 256),
        backbone_layers=(5, 5),
    ):
        super().__init__()
        self.tasks = tuple(tasks)
        unknown = [t for t in self.tasks if t not in TASKS]
        if unknown or not self.tasks:
            raise ValueError(f"FusedBEVNeck: tasks must be a non-empty subset of {TASKS}, got {tasks}")
        if fusion not in ("mafi", "conv"):
            raise ValueError(f"FusedBEVNeck: fusion must be 'mafi' or 'conv', got {fusion!r}")
        if out_channels % 2:
            raise ValueError(f"FusedBEVNeck: out_channels must be even (two FPN stages), got {out_channels}")
        self.lidar_channels = int(lidar_channels or 0)
        self.camera_channels = int(camera_channels or 0)
        if self.lidar_channels + self.camera_channels == 0:
            raise ValueError("FusedBEVNeck: at least one of lidar_channels / camera_channels must be > 0")
        self.fusion = fusion
        self.out_channels = out_channels
        in_channels = self.lidar_channels + self.camera_channels
        if fusion == "mafi":
            self.mafi = MAFI(self.lidar_channels, self.camera_channels, fused_channels, out_channels, self.tasks)
            self.fuser = None
        else:
            self.mafi = None
            self.fuser = ConvFuser(in_channels, fused_channels)
        self.backbone = SECONDFPN(
            fused_channels,
            layer_channels=backbone_channels,
            layer_nums=backbone_layers,
            layer_strides=(1, 2),
            upsample_strides=(1, 2),
            upsample_channels=(out_channels // 2, out_channels // 2),
        )

    def _prepare(self, bev, channels, mask, name, like):
        """Zero the samples whose modality is missing; build a zero map when the whole batch lacks it."""
        if bev is None:
            if channels == 0:
                return None
            return like.new_zeros(like.shape[0], channels, *like.shape[2:])
        if channels == 0:
            raise ValueError(f"FusedBEVNeck: got a {name} map but was built with {name}_channels=0")
        if bev.dim() != 4 or bev.shape[1] != channels:
            raise ValueError(f"FusedBEVNeck: {name}_bev must be (B, {channels}, X, Y), got {tuple(bev.shape)}")
        return bev * mask.to(bev.dtype)[:, None, None, None]

    def forward(self, lidar_bev, camera_bev, lidar_mask, camera_mask):
        """``lidar_bev (B, C_l, X, Y)`` or None, ``camera_bev (B, C_c, X, Y)`` or None, ``lidar_mask (B,)``
        bool, ``camera_mask (B,)`` bool (a ``(B, N_cam)`` camera mask is reduced with ``any``)."""
        if lidar_bev is None and camera_bev is None:
            raise ValueError("FusedBEVNeck: lidar_bev and camera_bev are both None")
        if camera_mask.dim() == 2:
            camera_mask = camera_mask.any(dim=1)
        like = lidar_bev if lidar_bev is not None else camera_bev
        if lidar_bev is not None and camera_bev is not None and lidar_bev.shape[2:] != camera_bev.shape[2:]:
            raise ValueError(f"FusedBEVNeck: lidar_bev grid {tuple(lidar_bev.shape[2:])} != camera_bev grid "
                             f"{tuple(camera_bev.shape[2:])}")
        for name, mask in (("lidar_mask", lidar_mask), ("camera_mask", camera_mask)):
            if tuple(mask.shape) != (like.shape[0],):
                raise ValueError(f"FusedBEVNeck: {name} must be ({like.shape[0]},), got {tuple(mask.shape)}")
        # (a mask, or all False for a modality absent from the whole batch; no tensor & bool: ONNX tracing)
        absent = torch.zeros_like(lidar_mask, dtype=torch.bool)  # both masks are (B,)
        lidar_present = lidar_mask.bool() if lidar_bev is not None else absent
        camera_present = camera_mask.bool() if camera_bev is not None else absent
        lidar = self._prepare(lidar_bev, self.lidar_channels, lidar_mask.bool(), "lidar", like)
        camera = self._prepare(camera_bev, self.camera_channels, camera_mask.bool(), "camera", like)
        # A modality disabled at construction has no channels: concat only what exists.
        empty = like.new_zeros(like.shape[0], 0, *like.shape[2:])
        lidar = empty if lidar is None else lidar
        camera = empty if camera is None else camera
        if self.fusion == "conv":
            features = self.backbone(self.fuser(camera, lidar))
            return {t: features for t in self.tasks}
        features = self.backbone(self.mafi.fuse(camera, lidar))
        lidar_w, camera_w = self.mafi.task_weights(lidar, camera, lidar_present, camera_present)
        return self.mafi.apply(features, lidar_w, camera_w)
