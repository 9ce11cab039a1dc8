"""Task-oriented channel scaling (TCS): one unbounded per-token, per-channel gate per task."""

import torch.nn as nn


class TaskChannelScaling(nn.Module):
    """``forward(bev (B, C, X, Y)) -> {task: bev * gate_task(bev)}`` with ``gate = Linear(GELU(Linear(token)))``.

    The last Linear starts at weight 0, bias 1, so every gate starts as the identity.
    """

    def __init__(self, d_model, tasks, hidden=None):
        super().__init__()
        hidden = hidden or d_model
        self.gates = nn.ModuleDict()
        for task in tasks:
            out = nn.Linear(hidden, d_model)
            nn.init.zeros_(out.weight)
            nn.init.ones_(out.bias)
            self.gates[task] = nn.Sequential(nn.Linear(d_model, hidden), nn.GELU(), out)

    def forward(self, bev):
        tokens = bev.permute(0, 2, 3, 1)
        return {task: (tokens * gate(tokens)).permute(0, 3, 1, 2) for task, gate in self.gates.items()}
