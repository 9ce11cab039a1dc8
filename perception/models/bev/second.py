"""SECOND-style 2D BEV backbone + FPN neck (SECONDFPN).

Input and output are BEV maps ``(B, C, X, Y)`` indexed x-first (LiDAR frame); the layers are plain 2D
convolutions, so the layout is preserved. Stage ``i`` down-samples by ``layer_strides[i]`` (relative to the
previous stage) and runs ``layer_nums[i]`` 3x3 conv blocks; each stage is then up-sampled with a transposed
convolution by ``upsample_strides[i]`` to one common stride and the results are concatenated.
"""

import torch
from torch import nn


def conv_bn_relu(in_channels, out_channels, kernel_size=3, stride=1):
    """``Conv2d (no bias) -> BatchNorm2d -> ReLU`` with 'same' padding for odd kernels."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class SECONDFPN(nn.Module):
    """Multi-stride conv stages, transposed-conv up-sampling to a common stride, channel concat.

    Output channels: ``sum(upsample_channels)`` (attribute ``out_channels``); output stride relative to the
    input: ``prod(layer_strides[:i+1]) / upsample_strides[i]``, which must be the same for every stage
    (attribute ``out_stride``, an integer >= 1).
    """

    def __init__(
        self,
        in_channels,
        layer_channels=(128, 256),
        layer_nums=(5, 5),
        layer_strides=(1, 2),
        upsample_strides=(1, 2),
        upsample_channels=(256, 256),
    ):
        super().__init__()
        lengths = {len(v) for v in (layer_channels, layer_nums, layer_strides, upsample_strides, upsample_channels)}
        if len(lengths) != 1:
            raise ValueError(
                "SECONDFPN: layer_channels, layer_nums, layer_strides, upsample_strides and upsample_channels "
                f"must have the same length, got {layer_channels}, {layer_nums}, {layer_strides}, "
                f"{upsample_strides}, {upsample_channels}"
            )
        stage_strides, total = [], 1
        for stride, up in zip(layer_strides, upsample_strides, strict=True):
            total *= stride
            if up < 1 or total % up:
                raise ValueError(f"SECONDFPN: upsample_strides {upsample_strides} must divide the stage strides")
            stage_strides.append(total // up)
        if len(set(stage_strides)) != 1:
            raise ValueError(
                f"SECONDFPN: stages end at different strides {stage_strides}; choose upsample_strides so that "
                "prod(layer_strides[:i+1]) / upsample_strides[i] is equal for all stages"
            )
        self.out_stride = stage_strides[0]
        self.total_stride = total
        self.out_channels = int(sum(upsample_channels))
        self.stages = nn.ModuleList()
        self.upsamples = nn.ModuleList()
        channels = in_channels
        for out_ch, num, stride, up, up_ch in zip(
            layer_channels, layer_nums, layer_strides, upsample_strides, upsample_channels, strict=True
        ):
            blocks = [conv_bn_relu(channels, out_ch, 3, stride)] + [conv_bn_relu(out_ch, out_ch) for _ in range(num)]
            self.stages.append(nn.Sequential(*blocks))
            self.upsamples.append(
                nn.Sequential(
                    nn.ConvTranspose2d(out_ch, up_ch, up, stride=up, bias=False),
                    nn.BatchNorm2d(up_ch),
                    nn.ReLU(inplace=True),
                )
            )
            channels = out_ch

    def forward(self, bev):
        """``bev (B, C_in, X, Y)`` -> ``(B, out_channels, X / out_stride, Y / out_stride)``."""
        if bev.shape[-2] % self.total_stride or bev.shape[-1] % self.total_stride:
            raise ValueError(
                f"SECONDFPN: BEV size {tuple(bev.shape[-2:])} must be divisible by the total stride "
                f"{self.total_stride} of layer_strides"
            )
        outputs = []
        x = bev
        for stage, upsample in zip(self.stages, self.upsamples, strict=True):
            x = stage(x)
            outputs.append(upsample(x))
        return torch.cat(outputs, dim=1)
