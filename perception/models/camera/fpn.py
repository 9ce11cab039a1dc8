"""Top-down FPN over image features; returns the one level that the LSS lift uses."""

import torch.nn.functional as F
from torch import nn

from perception.models.bev.second import conv_bn_relu


class ImageFPN(nn.Module):
    """Lateral 1x1 convs on every backbone level at stride >= ``out_stride``, top-down nearest up-sampling
    and addition, then a 3x3 conv-BN-ReLU on the ``out_stride`` level.

    ``in_channels``: dict stride -> channels (from :class:`ImageBackbone`). Output ``(N, out_channels,
    H / out_stride, W / out_stride)``.
    """

    def __init__(self, in_channels, out_channels, out_stride=8):
        super().__init__()
        self.strides = sorted(s for s in in_channels if s >= out_stride)
        if not self.strides or self.strides[0] != out_stride:
            raise ValueError(f"ImageFPN: feature_stride {out_stride} is not a backbone level {sorted(in_channels)}")
        self.lateral = nn.ModuleDict({str(s): nn.Conv2d(in_channels[s], out_channels, 1) for s in self.strides})
        self.output = conv_bn_relu(out_channels, out_channels, 3)

    def forward(self, features):
        x = self.lateral[str(self.strides[-1])](features[self.strides[-1]])
        for stride in reversed(self.strides[:-1]):
            lateral = self.lateral[str(stride)](features[stride])
            x = lateral + F.interpolate(x, size=lateral.shape[-2:], mode="nearest")
        return self.output(x)
