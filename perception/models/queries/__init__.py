"""Task-specific query initialisation on the task BEVs (detection, BEV map, occupancy)."""
