"""nuScenes data layer: samples, sensor readers, box conventions, info/index files, BEV map and Occ3D GT.

nuscenes-devkit (which loads matplotlib, cv2 and sklearn) is imported inside the functions that need it:
the runtime, and with it the ROS node, imports this package.
"""

from perception.data.bev_map import rasterize_bev_map
from perception.data.boxes import BOX_CONVENTIONS, convert_boxes
from perception.data.info_file import load_info_file, write_info_file
from perception.data.nuscenes_index import build_index
from perception.data.occupancy import Occupancy, load_occ3d
from perception.data.sample import CameraView, Sample, SweepInfo

__all__ = [
    "BOX_CONVENTIONS",
    "CameraView",
    "Occupancy",
    "Sample",
    "SweepInfo",
    "build_index",
    "convert_boxes",
    "load_info_file",
    "load_occ3d",
    "rasterize_bev_map",
    "write_info_file",
]
