"""BEV-map queries: ``num_strips x num_classes`` queries picked on an auxiliary map prediction (M3Net).

The BEV X axis (augmented LiDAR x) is cut into ``num_strips`` equal strips. An auxiliary map prediction
(learned class embeddings dotted with a per-pixel embedding) gives, per strip and class, the argmax cell; the
query for (strip s, class k) is the BEV feature there + the class embedding, positioned at that cell.
Query order: ``s * num_classes + k``.
"""

import math

import torch
import torch.nn as nn

from perception.constants import BEV_MAP_CLASSES
from perception.models.queries.common import cells_to_normalized, conv_bn_relu, gather_cells


def strip_of_fraction(fx, num_strips):
    """Strip index ``(...)`` int64 of normalized x positions ``fx`` in [0, 1] (clamped to valid strips)."""
    return (fx * num_strips).floor().long().clamp(0, num_strips - 1)


class MapQueryInit(nn.Module):
    """``forward(bev (B, d, X, Y)) -> dict``: ``pixel_embed`` ``(B, d, X, Y)``, ``aux_logits`` ``(B, K, X, Y)``,
    ``query`` ``(B, S*K, d)``, ``ref`` ``(B, S*K, 2)``."""

    def __init__(self, d_model, num_strips=5, num_classes=len(BEV_MAP_CLASSES)):
        super().__init__()
        self.num_strips, self.num_classes = num_strips, num_classes
        self.pixel_embed = nn.Sequential(conv_bn_relu(d_model, d_model), nn.Conv2d(d_model, d_model, 1))
        self.class_embed = nn.Parameter(torch.randn(num_classes, d_model) / math.sqrt(d_model))

    def attention_mask(self, device=None):
        """``(S*K, S*K)`` bool mask for the queries' self-attention (True = not attended): as M3Net, a map
        query attends to the other classes of its strip and to its own class in the other strips."""
        idx = torch.arange(self.num_strips * self.num_classes, device=device)
        strip, cls = idx // self.num_classes, idx % self.num_classes
        return ~((strip[:, None] == strip[None]) | (cls[:, None] == cls[None]))

    def class_logits(self, pixel_embed):
        """Auxiliary logits ``(B, K, ...)`` = class embeddings . per-pixel embedding ``(B, d, ...)``."""
        return torch.einsum("kd,bd...->bk...", self.class_embed, pixel_embed)

    def forward(self, bev):
        b, d, nx, ny = bev.shape
        if nx < self.num_strips:
            raise ValueError(f"BEV has {nx} cells along x, fewer than model.head.map.num_strips {self.num_strips}")
        pixel_embed = self.pixel_embed(bev)
        aux = self.class_logits(pixel_embed)
        strip = strip_of_fraction((torch.arange(nx, device=bev.device) + 0.5) / nx, self.num_strips)
        cells = []
        for s in range(self.num_strips):
            ix = torch.nonzero(strip == s)[:, 0]
            part = aux.detach()[:, :, ix].flatten(2)  # (B, K, n_s * Y), x-first within the strip
            best = part.argmax(-1)
            cells.append((ix[0] + torch.div(best, ny, rounding_mode="floor")) * ny + best % ny)
        cells = torch.stack(cells, dim=1).reshape(b, self.num_strips * self.num_classes)
        query = gather_cells(bev, cells) + self.class_embed.repeat(self.num_strips, 1)[None]
        return {"pixel_embed": pixel_embed, "aux_logits": aux, "query": query,
                "ref": cells_to_normalized(cells, nx, ny)}
