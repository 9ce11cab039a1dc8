"""Task heads (detection, BEV map, occupancy) and the :class:`MultiTaskHead` that combines them."""
