"""Single-level deformable attention in pure PyTorch (``F.grid_sample``), linear in the number of BEV cells.

Each query predicts, per head, ``num_points`` sampling offsets (in BEV cells, around its reference point)
and softmax weights; the head's value map is sampled bilinearly there. Reference points are normalized BEV
coordinates ``(fx, fy)`` in [0, 1]: fraction of the range along LiDAR x and y of the augmented frame.
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from perception.models.heads.bev_sampling import normalized_to_grid


class DeformableAttention2D(nn.Module):
    """``forward(query (B, Q, d), ref (B, Q, 2), value (B, d, X, Y)) -> (B, Q, d)``."""

    def __init__(self, d_model, num_heads, num_points=4):
        super().__init__()
        if d_model % num_heads:
            raise ValueError(f"d_model {d_model} not divisible by num_heads {num_heads}")
        self.h, self.p = num_heads, num_points
        self.sampling_offsets = nn.Linear(d_model, num_heads * num_points * 2)
        self.attention_weights = nn.Linear(d_model, num_heads * num_points)
        self.value_proj = nn.Conv2d(d_model, d_model, 1)
        self.output_proj = nn.Linear(d_model, d_model)
        # Deformable-DETR init: head h looks in direction 2*pi*h/H, point p at distance p+1 cells.
        nn.init.zeros_(self.sampling_offsets.weight)
        theta = torch.arange(num_heads, dtype=torch.float32) * (2 * math.pi / num_heads)
        dirs = torch.stack([theta.cos(), theta.sin()], -1)
        dirs = dirs / dirs.abs().max(-1, keepdim=True).values
        bias = dirs[:, None, :] * torch.arange(1, num_points + 1, dtype=torch.float32)[None, :, None]
        self.sampling_offsets.bias.data.copy_(bias.flatten())
        nn.init.zeros_(self.attention_weights.weight)
        nn.init.zeros_(self.attention_weights.bias)

    def forward(self, query, ref, value):
        b, q, d = query.shape
        nx, ny = value.shape[-2:]
        v = self.value_proj(value).reshape(b * self.h, d // self.h, nx, ny)
        offsets = self.sampling_offsets(query).reshape(b, q, self.h, self.p, 2)
        cells = offsets.new_tensor([nx, ny])
        loc = ref[:, :, None, None, :] + offsets / cells  # normalized (fx, fy)
        grid = normalized_to_grid(loc).permute(0, 2, 1, 3, 4).reshape(b * self.h, q, self.p, 2)
        sampled = F.grid_sample(v, grid.to(v.dtype), mode="bilinear", padding_mode="zeros", align_corners=False)
        weights = self.attention_weights(query).reshape(b, q, self.h, self.p).softmax(-1)
        weights = weights.permute(0, 2, 1, 3).reshape(b * self.h, 1, q, self.p)
        out = (sampled * weights).sum(-1).reshape(b, d, q).transpose(1, 2)
        return self.output_proj(out)
