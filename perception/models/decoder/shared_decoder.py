"""The shared multi-task decoder: ``num_layers`` :class:`DecoderLayer` s over one BEV and all task queries."""

import torch
import torch.nn as nn

from perception.models.decoder.layers import DecoderLayer


def bev_reference_points(nx, ny, device=None):
    """Normalized centres ``(1, X*Y, 2)`` of an ``(X, Y)`` grid, x-first flattening (``ix * Y + iy``)."""
    fx = (torch.arange(nx, dtype=torch.float32, device=device) + 0.5) / nx
    fy = (torch.arange(ny, dtype=torch.float32, device=device) + 0.5) / ny
    gx, gy = torch.meshgrid(fx, fy, indexing="ij")
    return torch.stack([gx, gy], dim=-1).reshape(1, nx * ny, 2)


class SharedDecoder(nn.Module):
    """``forward(bev (B, d, X, Y), queries, refs, pos_embed) -> (task_bevs, queries)`` after the last layer.

    ``queries`` ``{task: (B, Q_t, d)}``, ``refs`` ``{task: (B, Q_t, 2)}`` normalized BEV positions (fixed
    across layers), ``pos_embed`` a module mapping normalized positions ``(..., 2)`` to ``(..., d)``. Only the
    last layer's outputs are returned (and supervised).
    """

    def __init__(self, kind, tasks, num_layers, d_model, num_heads, ffn_dim, num_points=4, tcs_hidden=None):
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        self.layers = nn.ModuleList(
            DecoderLayer(kind, d_model, num_heads, ffn_dim, tasks, num_points, tcs_hidden) for _ in range(num_layers)
        )

    def forward(self, bev, queries, refs, pos_embed, attn_masks=None):
        """``attn_masks``: optional ``{task: (Q_t, Q_t) bool}`` self-attention masks (True = not attended)."""
        nx, ny = bev.shape[-2:]
        bev_ref = bev_reference_points(nx, ny, bev.device)
        bev_pos = pos_embed(bev_ref)
        query_pos = {task: pos_embed(r) for task, r in refs.items()}
        task_bevs = None
        for layer in self.layers:
            bev, task_bevs, queries = layer(bev, bev_pos, bev_ref, queries, query_pos, refs, attn_masks or {})
        return task_bevs, queries
