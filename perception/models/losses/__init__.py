"""Loss functions of the multi-task heads (pure functions on tensors, no module state)."""
