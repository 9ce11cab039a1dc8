"""Learned positional embedding of normalized BEV positions (TransFusion's ``PositionEmbeddingLearned``)."""

import torch.nn as nn


class PositionEmbedding(nn.Module):
    """``(..., 2)`` normalized (fx, fy) in [0, 1] -> ``(..., d_model)`` via a 2-layer MLP."""

    def __init__(self, d_model):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(2, d_model), nn.ReLU(inplace=True), nn.Linear(d_model, d_model))

    def forward(self, pos):
        return self.mlp(pos)
