"""The M3Net-style fusion model: LiDAR and camera encoders, MAFI fusion, shared decoder and task heads.

Sub-packages: ``lidar`` (voxelization, pillar / sparse encoders), ``camera`` (image backbone, FPN,
LSS lift with LiDAR-assisted depth), ``bev`` (SECOND-style BEV backbone + FPN), ``fusion`` (MAFI and the
fused BEV neck), ``queries`` / ``decoder`` / ``heads`` / ``losses`` (the multi-task head), ``roi_heads``
(the optional second stage that refines boxes from the LiDAR points). All BEV tensors
are ``(B, C, X, Y)`` indexed x-first in the augmented LiDAR frame. :func:`build_model` assembles
:class:`M3Net` from the ``model`` config section.
"""

from perception.models.m3net import M3Net, build_model

__all__ = ["M3Net", "build_model"]
