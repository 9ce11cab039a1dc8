"""Camera encoder: multi-view images -> BEV features ``(B, C_c, X, Y)`` (x-first, augmented LiDAR frame).

ResNet/timm backbone -> FPN (one level, stride ``feature_stride``) -> depth net (optionally fed a LiDAR
depth map encoded by a small conv net) -> LSS lift (depth distribution x context) -> sum pooling onto the
BEV grid (at ``bev_cell / bev_pool_factor``, then a strided conv down to ``bev_cell``).

``lidar_depth_dropout`` p > 0 teaches the depth net to lift without LiDAR (a fusion model whose LiDAR drops out):
in training each sample's LiDAR depth INPUT is withheld with probability p (its depth TARGET stays, so the depth
head learns monocular depth there; the LiDAR encoder still gets the points), and a camera whose depth map holds no
LiDAR return (withheld, or no LiDAR at all) gets a learned "no depth" feature instead of the depth encoder's
output, so the depth encoder's BatchNorm statistics are those of real depth maps only.
Inputs follow the training-batch table of ``docs/architecture.md``.
"""

import torch
import torch.nn.functional as F
from torch import nn

from perception.models.bev.second import conv_bn_relu
from perception.models.camera.backbone import ImageBackbone
from perception.models.camera.fpn import ImageFPN
from perception.models.camera.lss import (
    BevPoolPlan,
    DepthBins,
    bev_pool,
    bev_pool_ranked,
    frustum_to_lidar,
    lidar_depth_map,
    make_frustum,
)
from perception.models.lidar.encoder import bev_grid_shape
from perception.models.timing import stage


class CameraEncoder(nn.Module):
    """See the module docstring. ``image_size = (H, W)`` pixels of the (augmented) input images, multiples
    of 32; ``point_cloud_range`` metres; ``bev_cell`` metres; ``depth_bins = (start, stop, step)`` metres.
    ``out_channels == context_channels``."""

    def __init__(
        self,
        image_size,
        point_cloud_range,
        bev_cell,
        backbone="resnet18",
        pretrained=False,
        weights_path=None,
        fpn_channels=256,
        context_channels=80,
        depth_bins=(1.0, 60.0, 0.5),
        use_lidar_depth=True,
        feature_stride=8,
        bev_pool_factor=1,
        depth_encoder_channels=32,
        lidar_depth_dropout=0.0,
    ):
        super().__init__()
        height, width = image_size
        if height % 32 or width % 32:
            raise ValueError(f"CameraEncoder: image_size {image_size} must be multiples of 32")
        self.image_size = (int(height), int(width))
        self.feature_stride = int(feature_stride)
        self.feature_hw = (height // feature_stride, width // feature_stride)
        self.point_cloud_range = [float(v) for v in point_cloud_range]
        self.bev_shape = bev_grid_shape(self.point_cloud_range, bev_cell)
        self.pool_factor = int(bev_pool_factor)
        if self.pool_factor < 1:
            raise ValueError(f"CameraEncoder: bev_pool_factor must be >= 1, got {bev_pool_factor}")
        self.pool_cell = bev_cell / self.pool_factor
        self.pool_shape = (self.bev_shape[0] * self.pool_factor, self.bev_shape[1] * self.pool_factor)
        self.depth_bins = DepthBins(*depth_bins)
        self.context_channels = context_channels
        self.out_channels = context_channels
        self.use_lidar_depth = use_lidar_depth
        self.lidar_depth_dropout = float(lidar_depth_dropout)
        if not 0.0 <= self.lidar_depth_dropout < 1.0:
            raise ValueError(f"CameraEncoder: lidar_depth_dropout must be in [0, 1), got {lidar_depth_dropout}")
        if self.lidar_depth_dropout and not use_lidar_depth:
            raise ValueError("CameraEncoder: lidar_depth_dropout needs use_lidar_depth=True")

        self.backbone = ImageBackbone(backbone, pretrained=pretrained, weights_path=weights_path)
        self.fpn = ImageFPN(self.backbone.channels, fpn_channels, out_stride=self.feature_stride)
        depth_in = fpn_channels
        if use_lidar_depth:
            # Input: (depth / max depth, has-depth flag) at feature resolution.
            half = depth_encoder_channels // 2
            self.depth_encoder = nn.Sequential(conv_bn_relu(2, half), conv_bn_relu(half, depth_encoder_channels))
            depth_in += depth_encoder_channels
        # The depth encoder's output for a camera without LiDAR depth (only with lidar_depth_dropout: checkpoints
        # trained without it keep running the encoder on the empty map).
        self.missing_depth = None
        if self.lidar_depth_dropout:
            self.missing_depth = nn.Parameter(torch.zeros(1, depth_encoder_channels, 1, 1))
        self.depth_net = nn.Sequential(
            conv_bn_relu(depth_in, fpn_channels),
            nn.Conv2d(fpn_channels, self.depth_bins.num_bins + context_channels, 1),
        )
        self.downsample = (
            nn.Sequential(
                nn.Conv2d(context_channels, context_channels, 3, stride=self.pool_factor, padding=1, bias=False),
                nn.BatchNorm2d(context_channels),
                nn.ReLU(inplace=True),
            )
            if self.pool_factor > 1
            else nn.Identity()
        )
        frustum = make_frustum(self.feature_hw, self.feature_stride, self.depth_bins.centres())
        self.register_buffer("frustum", frustum, persistent=False)
        self._geometry_cache = None  # (intrinsics, lidar2cam, geometry, {cam_mask: BevPoolPlan}) for a fixed rig

    def _check_inputs(self, images, cam_mask, intrinsics, lidar2cam):
        if images.dim() != 5 or tuple(images.shape[-3:]) != (3,) + self.image_size:
            raise ValueError(f"images must be (B, N_cam, 3, {self.image_size[0]}, {self.image_size[1]}), "
                             f"got {tuple(images.shape)}")
        b, n = images.shape[:2]
        for name, t, tail in (("cam_mask", cam_mask, ()), ("intrinsics", intrinsics, (3, 3)),
                              ("lidar2cam", lidar2cam, (4, 4))):
            if tuple(t.shape) != (b, n) + tail:
                raise ValueError(f"{name} must be {(b, n) + tail}, got {tuple(t.shape)}")

    def _cached(self, intrinsics, lidar2cam):
        cache = self._geometry_cache
        if (
            not self.training
            and cache is not None
            and cache[0].shape == intrinsics.shape
            and cache[1].shape == lidar2cam.shape
            and cache[0].device == intrinsics.device
            and torch.equal(cache[0], intrinsics)
            and torch.equal(cache[1], lidar2cam)
        ):
            return cache
        return None

    def geometry(self, intrinsics, lidar2cam):
        """LiDAR-frame positions ``(B, N, D, h, w, 3)`` of the frustum; cached in eval mode while the
        calibration tensors are unchanged."""
        cache = self._cached(intrinsics, lidar2cam)
        if cache is not None:
            return cache[2]
        geometry = frustum_to_lidar(self.frustum, intrinsics, lidar2cam)
        if not self.training:
            self._geometry_cache = (intrinsics.detach().clone(), lidar2cam.detach().clone(), geometry, {})
        return geometry

    def pool_plan(self, intrinsics, lidar2cam, cam_mask):
        """The :class:`BevPoolPlan` of this calibration and camera mask: cached (eval mode) beside the
        geometry, one per camera mask, so a fixed rig computes it once."""
        geometry = self.geometry(intrinsics, lidar2cam)
        cache = self._cached(intrinsics, lidar2cam)
        key = tuple(cam_mask.bool().flatten().tolist())
        if cache is not None and key in cache[3]:
            return cache[3][key]
        plan = BevPoolPlan(geometry, cam_mask, self.point_cloud_range, self.pool_cell, self.pool_shape)
        if cache is not None:
            if len(cache[3]) >= 16:  # camera masks seen for this rig (a dropped camera changes the mask)
                cache[3].clear()
            cache[3][key] = plan
        return plan

    def lidar_depth(self, points, lidar_mask, intrinsics, lidar2cam, cam_mask):
        """Sparse LiDAR depth at feature resolution ``(B, N, h, w)`` (:func:`lidar_depth_map`; stays in Python
        in the ONNX export)."""
        batch, num_cams = cam_mask.shape
        if lidar_mask is None:
            lidar_mask = torch.ones(batch, dtype=torch.bool, device=cam_mask.device)
        k4 = torch.eye(4, device=intrinsics.device, dtype=intrinsics.dtype).expand(batch, num_cams, 4, 4).clone()
        k4[..., :3, :3] = intrinsics
        return lidar_depth_map(points, lidar_mask, k4 @ lidar2cam, cam_mask.bool(), self.feature_hw,
                               self.feature_stride)

    def forward(self, images, cam_mask, intrinsics, lidar2cam, points=None, lidar_mask=None):
        """``images (B, N, 3, H, W)``, ``cam_mask (B, N)`` bool, ``intrinsics (B, N, 3, 3)`` (augmented,
        pixels), ``lidar2cam (B, N, 4, 4)`` (augmented LiDAR -> camera), optional ``points`` (list of B
        ``(P_i, 5)``, augmented LiDAR frame) with ``lidar_mask (B,)``.

        Returns ``(bev (B, C_c, X, Y), aux)``; ``aux['depth_logits'] (B, N, D, h, w)`` and, when points are
        given, ``aux['depth_target'] (B, N, h, w)`` int64 depth-bin index, -1 where no LiDAR depth.
        """
        self._check_inputs(images, cam_mask, intrinsics, lidar2cam)
        batch, num_cams = images.shape[:2]
        h, w = self.feature_hw
        cam_mask = cam_mask.bool()
        aux = {}
        depth_map = None
        if points is not None:
            with stage("view_transform"):
                depth_map = self.lidar_depth(points, lidar_mask, intrinsics, lidar2cam, cam_mask)
                aux["depth_target"] = self.depth_bins.index(depth_map)
                if self.training and self.lidar_depth_dropout:  # withhold the input, keep the target
                    keep = torch.rand(batch, device=depth_map.device) >= self.lidar_depth_dropout  # (B,)
                    depth_map = depth_map * keep[:, None, None, None].to(depth_map.dtype)  # (B, N, h, w)

        # Only present cameras go through the network; missing ones keep zero features and zero depth mass.
        selected = cam_mask.reshape(-1).nonzero().squeeze(1)
        context = images.new_zeros(batch * num_cams, self.context_channels, h, w)
        depth_logits = images.new_zeros(batch * num_cams, self.depth_bins.num_bins, h, w)
        if selected.numel():
            with stage("image_backbone"):
                features = self.fpn(self.backbone(images.reshape(-1, 3, *self.image_size)[selected]))
            with stage("view_transform"):
                if self.use_lidar_depth:
                    if depth_map is not None:
                        sparse = depth_map.reshape(-1, 1, h, w)[selected]
                    else:
                        sparse = features.new_zeros(len(selected), 1, h, w)
                    features = torch.cat([features, self.encode_depth(sparse)], 1)
                out = self.depth_net(features)
                # under autocast ``out`` is fp16 while the zero buffers are fp32: copy in the buffers' dtype
                out = out.to(depth_logits.dtype)
                depth_logits = depth_logits.index_copy(0, selected, out[:, : self.depth_bins.num_bins])
                context = context.index_copy(0, selected, out[:, self.depth_bins.num_bins :])
        with stage("view_transform"):
            depth_logits = depth_logits.view(batch, num_cams, -1, h, w)
            aux["depth_logits"] = depth_logits
            depth_probs = depth_logits.softmax(dim=2) * cam_mask[:, :, None, None, None]
            context = context.view(batch, num_cams, -1, h, w)
            with stage("bev_pool"):
                if self.training:  # the reference (per camera, cell arithmetic every step)
                    geometry = self.geometry(intrinsics, lidar2cam)
                    bev = bev_pool(depth_probs, context, geometry, cam_mask, self.point_cloud_range, self.pool_cell,
                                   self.pool_shape)
                else:  # precomputed ranks, cached for the rig
                    bev = bev_pool_ranked(depth_probs, context, self.pool_plan(intrinsics, lidar2cam, cam_mask))
            return self.downsample(bev), aux

    def encode_depth(self, sparse):
        """``sparse (M, 1, h, w)`` LiDAR depth in metres (0 = none) -> ``(M, C_d, h, w)`` depth features. With
        ``missing_depth``, a camera whose map has no return gets it instead; in training the encoder runs on the
        other cameras only (BatchNorm batch statistics of real maps), in eval on all (per-row, the same result)."""
        x = torch.cat([sparse / self.depth_bins.stop, (sparse > 0).to(sparse.dtype)], 1)  # (M, 2, h, w)
        if self.missing_depth is None:
            return self.depth_encoder(x)
        has = (sparse > 0).flatten(1).any(1)  # (M,)
        missing = self.missing_depth.to(sparse.dtype).expand(x.shape[0], -1, *x.shape[2:])  # (M, C_d, h, w)
        if not self.training:
            return torch.where(has[:, None, None, None], self.depth_encoder(x).to(missing.dtype), missing)
        index = has.nonzero().squeeze(1)
        if index.numel() == 0:
            return missing
        return missing.index_copy(0, index, self.depth_encoder(x[index]).to(missing.dtype))

    def depth_loss(self, aux):
        """Cross-entropy of the depth distribution against the LiDAR depth bin, averaged over the feature
        cells that have LiDAR depth in range; a zero tensor when there is none (no points / no LiDAR)."""
        logits = aux.get("depth_logits")
        target = aux.get("depth_target")
        if logits is None:
            raise ValueError("depth_loss: aux has no 'depth_logits' (pass the aux dict returned by forward)")
        if target is None or not bool((target >= 0).any()):
            return logits.sum() * 0.0
        num_bins = logits.shape[2]
        flat_logits = logits.permute(0, 1, 3, 4, 2).reshape(-1, num_bins)
        return F.cross_entropy(flat_logits, target.reshape(-1), ignore_index=-1)
