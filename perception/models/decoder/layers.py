"""One layer of the shared decoder: BEV mixing (deformable self-attention or SS2D) + FFN, TCS, then for each
task: query self-attention, query reading of its own gated BEV, query FFN. All weights are shared by the tasks
except the TCS gates.

Query reading: ``'transformer'`` uses deformable cross-attention (sampling points around the query's reference
cell, cost linear in BEV size); ``'mamba'`` adds ``LayerNorm(gated BEV token at the query's cell)`` (M3Net).
"""

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint

from perception.models.decoder.deformable_attention import DeformableAttention2D
from perception.models.decoder.ss2d import SS2D
from perception.models.decoder.tcs import TaskChannelScaling
from perception.models.heads.bev_sampling import normalized_to_grid

DECODER_KINDS = ("transformer", "mamba")


def ffn(d_model, ffn_dim):
    return nn.Sequential(nn.Linear(d_model, ffn_dim), nn.ReLU(inplace=True), nn.Linear(ffn_dim, d_model))


def read_cells(bev, ref):
    """Bilinear read of ``bev`` ``(B, C, X, Y)`` at normalized reference points ``(B, Q, 2)`` -> ``(B, Q, C)``."""
    grid = normalized_to_grid(ref)[:, :, None, :].to(bev.dtype)
    return F.grid_sample(bev, grid, mode="bilinear", padding_mode="zeros", align_corners=False)[..., 0].transpose(1, 2)


class DecoderLayer(nn.Module):
    """``forward(bev, bev_pos, bev_ref, queries, query_pos, refs) -> (bev, task_bevs, queries)``.

    ``bev`` ``(B, d, X, Y)``; ``bev_pos`` ``(1, X*Y, d)`` and ``bev_ref`` ``(1, X*Y, 2)`` (normalized cell
    centres, x-first flattening); ``queries``/``query_pos`` ``{task: (B, Q_t, d)}``; ``refs`` ``{task: (B, Q_t, 2)}``.
    """

    def __init__(self, kind, d_model, num_heads, ffn_dim, tasks, num_points=4, tcs_hidden=None):
        super().__init__()
        if kind not in DECODER_KINDS:
            raise ValueError(f"decoder must be one of {DECODER_KINDS}, got {kind!r}")
        self.kind = kind
        if kind == "transformer":
            self.bev_attn = DeformableAttention2D(d_model, num_heads, num_points)
            self.cross_attn = DeformableAttention2D(d_model, num_heads, num_points)
        else:
            self.ss2d = SS2D(d_model)
            self.read_norm = nn.LayerNorm(d_model)
        self.bev_norm1, self.bev_norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.bev_ffn = ffn(d_model, ffn_dim)
        self.tcs = TaskChannelScaling(d_model, tasks, tcs_hidden)
        self.self_attn = nn.MultiheadAttention(d_model, num_heads, batch_first=True)
        self.q_norm1, self.q_norm2, self.q_norm3 = nn.LayerNorm(d_model), nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.q_ffn = ffn(d_model, ffn_dim)

    def _mix_bev(self, bev, bev_pos, bev_ref):
        b, d, nx, ny = bev.shape
        tokens = bev.flatten(2).transpose(1, 2)  # (B, X*Y, d), x-first
        if self.kind == "transformer":
            ref = bev_ref.expand(b, -1, -1)
            tokens = self.bev_norm1(tokens + self.bev_attn(tokens + bev_pos, ref, bev))
        else:
            # The pure-PyTorch scan keeps (tokens x d_inner x d_state) states per scan order for backward:
            # ~75 GB for the full 180 x 180 config. Recompute them in backward instead (activation
            # checkpointing); the mamba_ssm kernel does the same internally.
            if torch.is_grad_enabled() and bev.requires_grad:
                mixed = torch.utils.checkpoint.checkpoint(self.ss2d, bev, use_reentrant=False)
            else:
                mixed = self.ss2d(bev)
            tokens = self.bev_norm1(tokens + mixed.flatten(2).transpose(1, 2))
        tokens = self.bev_norm2(tokens + self.bev_ffn(tokens))
        return tokens.transpose(1, 2).reshape(b, d, nx, ny)

    def forward(self, bev, bev_pos, bev_ref, queries, query_pos, refs, attn_masks=None):
        bev = self._mix_bev(bev, bev_pos, bev_ref)
        task_bevs = self.tcs(bev)
        out = {}
        for task, q in queries.items():
            qp = q + query_pos[task]
            mask = (attn_masks or {}).get(task)
            q = self.q_norm1(q + self.self_attn(qp, qp, q, attn_mask=mask, need_weights=False)[0])
            if self.kind == "transformer":
                q = self.q_norm2(q + self.cross_attn(q + query_pos[task], refs[task], task_bevs[task]))
            else:
                q = self.q_norm2(q + self.read_norm(read_cells(task_bevs[task], refs[task])))
            out[task] = self.q_norm3(q + self.q_ffn(q))
        return bev, task_bevs, out
