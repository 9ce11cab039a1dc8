"""Legacy mmdet3d < 1.0 info files (``{'infos', 'metadata'}``): one sample's info dict -> the mmdet3d >= 1.1 "v2"
layout that :func:`perception.data.info_file.load_info_file` reads.

The legacy layout holds raw quaternion calibration (``*_rotation`` w, x, y, z + ``*_translation`` metres),
``sensor2lidar`` per camera, the ego pose of each camera AT THE CAMERA TIMESTAMP, and timestamps in
MICROSECONDS (v2: seconds). Boxes and names are passed through (``bbox_label_name``); their convention is
decided by the reader (``'mmdet3d_legacy'`` by default).
"""

import numpy as np

from perception.geometry import invert, make_transform


def legacy_to_v2(info):
    """One mmdet3d < 1.0 info dict -> the v2 layout (timestamps to seconds, quaternions to 4x4)."""
    lidar2ego = make_transform(info["lidar2ego_rotation"], info["lidar2ego_translation"])
    images = {}
    for name, cam in info.get("cams", {}).items():
        sensor2lidar = np.eye(4)
        sensor2lidar[:3, :3] = cam["sensor2lidar_rotation"]
        sensor2lidar[:3, 3] = cam["sensor2lidar_translation"]
        images[name] = {
            "img_path": cam["data_path"],
            "cam2img": np.asarray(cam["cam_intrinsic"]).tolist(),
            "cam2ego": make_transform(cam["sensor2ego_rotation"], cam["sensor2ego_translation"]).tolist(),
            "ego2global": make_transform(cam["ego2global_rotation"], cam["ego2global_translation"]).tolist(),
            "lidar2cam": invert(sensor2lidar).tolist(),
            "timestamp": cam["timestamp"] / 1e6,
            "sample_data_token": cam.get("sample_data_token", ""),
        }
    sweeps = [
        {
            "lidar_points": {
                "lidar_path": sw["data_path"],
                "lidar2ego": make_transform(sw["sensor2ego_rotation"], sw["sensor2ego_translation"]).tolist(),
            },
            "ego2global": make_transform(sw["ego2global_rotation"], sw["ego2global_translation"]).tolist(),
            "timestamp": sw["timestamp"] / 1e6,
            "sample_data_token": sw.get("sample_data_token", ""),
        }
        for sw in info.get("sweeps", [])
    ]
    n = len(info.get("gt_boxes", []))
    velocity = info.get("gt_velocity", np.full((n, 2), np.nan))
    instances = [
        {
            "bbox_3d": list(info["gt_boxes"][i]),
            "bbox_label_name": str(info["gt_names"][i]),
            "velocity": list(velocity[i]),
            "num_lidar_pts": int(info["num_lidar_pts"][i]) if "num_lidar_pts" in info else -1,
            "bbox_3d_isvalid": bool(info["valid_flag"][i]) if "valid_flag" in info else True,
        }
        for i in range(n)
    ]
    return {
        "token": info["token"],
        "scene_token": info.get("scene_token", ""),
        "lidar_token": info.get("lidar_token", ""),
        "timestamp": info["timestamp"] / 1e6,
        "ego2global": make_transform(info["ego2global_rotation"], info["ego2global_translation"]).tolist(),
        "lidar_points": {"lidar_path": info["lidar_path"], "lidar2ego": lidar2ego.tolist()},
        "lidar_sweeps": sweeps,
        "images": images,
        "instances": instances,
    }
