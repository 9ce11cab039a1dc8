"""Image backbones returning multi-scale feature maps (strides 4, 8, 16, 32 of the input image).

torchvision ResNets (``resnet18/34/50``) are built in; any other name is created with ``timm``
(``features_only=True``) when ``timm`` is installed. ``pretrained=False`` is the default (no internet);
``weights_path`` loads a local state dict.
"""

import torch
import torchvision
from torch import nn

TORCHVISION_RESNETS = ("resnet18", "resnet34", "resnet50")


class ImageBackbone(nn.Module):
    """``forward(images (N, 3, H, W)) -> dict[stride, Tensor (N, C_s, H/stride, W/stride)]`` for the strides
    in ``self.channels`` (a dict stride -> channels)."""

    def __init__(self, name="resnet18", pretrained=False, weights_path=None):
        super().__init__()
        self.name = name
        if name in TORCHVISION_RESNETS:
            weights = "DEFAULT" if pretrained and weights_path is None else None
            net = getattr(torchvision.models, name)(weights=weights)
            self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
            self.layers = nn.ModuleList([net.layer1, net.layer2, net.layer3, net.layer4])
            widths = [64, 128, 256, 512] if name in ("resnet18", "resnet34") else [256, 512, 1024, 2048]
            self.channels = dict(zip((4, 8, 16, 32), widths, strict=True))
            self.timm_model = None
        else:
            try:  # optional, and seconds to import: only for a backbone that is no torchvision ResNet
                import timm
            except ImportError:
                raise ValueError(f"image backbone {name!r} is not one of {TORCHVISION_RESNETS} and timm is not "
                                 f"installed") from None
            if name not in timm.list_models():
                raise ValueError(f"image backbone {name!r}: neither a torchvision ResNet {TORCHVISION_RESNETS} "
                                 f"nor a timm model name")
            self.timm_model = timm.create_model(name, pretrained=pretrained and weights_path is None,
                                                features_only=True)
            feature_info = self.timm_model.feature_info
            self.channels = dict(zip(feature_info.reduction(), feature_info.channels(), strict=True))
        if weights_path is not None:
            state = torch.load(weights_path, map_location="cpu", weights_only=True)
            target = self.timm_model if self.timm_model is not None else net
            if not set(state) & set(target.state_dict()):
                raise ValueError(f"weights_path {weights_path}: no parameter matches backbone {name!r}")
            target.load_state_dict(state, strict=False)

    def forward(self, images):
        if self.timm_model is not None:
            features = self.timm_model(images)
            return dict(zip(self.timm_model.feature_info.reduction(), features, strict=True))
        x = self.stem(images)
        out = {}
        for stride, layer in zip((4, 8, 16, 32), self.layers, strict=True):
            x = layer(x)
            out[stride] = x
        return out
