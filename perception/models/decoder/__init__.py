"""The shared multi-task decoder (Transformer or Mamba layers) and its building blocks."""
