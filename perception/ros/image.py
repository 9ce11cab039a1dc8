"""``sensor_msgs/Image``, ``CompressedImage`` and ``CameraInfo`` <-> numpy.

Readers (duck-typed, no ROS import): :func:`image_to_rgb`, :func:`compressed_to_rgb`,
:func:`camera_info_to_intrinsics`. Builders return rclpy messages: :func:`rgb_to_image`,
:func:`rgb_to_compressed`, :func:`jpeg_bytes_to_compressed`, :func:`intrinsics_to_camera_info`.

Images are assumed to be **rectified** (or undistorted enough for the model, as the nuScenes images are):
the model projects with the pinhole ``K`` only, so the CameraInfo distortion (``d``) is ignored. Feed the
node ``image_rect`` topics from ``image_proc`` for a camera with strong distortion.
"""

import io

import numpy as np
from PIL import Image as PILImage

from perception.ros._buffers import as_uint8, to_byte_array
from perception.ros.errors import MessageError

# encoding -> (channels, indices of R, G, B in the pixel)
IMAGE_ENCODINGS = {
    "rgb8": (3, (0, 1, 2)),
    "bgr8": (3, (2, 1, 0)),
    "rgba8": (4, (0, 1, 2)),
    "bgra8": (4, (2, 1, 0)),
    "mono8": (1, (0, 0, 0)),
}


def image_to_rgb(msg):
    """A ``sensor_msgs/Image`` (encodings rgb8, bgr8, mono8, rgba8, bgra8) -> ``(H, W, 3)`` uint8 RGB.

    Honours ``step`` (row padding). mono8 gives three equal channels; alpha is dropped.
    Raises :class:`MessageError`: kind ``image_encoding`` for another encoding, ``image_size`` when
    ``step < width * channels``, ``len(data) < step * height`` or the image is empty.
    """
    encoding = str(msg.encoding)
    spec = IMAGE_ENCODINGS.get(encoding.strip().lower())
    if spec is None:
        raise MessageError(
            f"Image: unknown encoding '{encoding}' (supported: {sorted(IMAGE_ENCODINGS)})", "image_encoding"
        )
    channels, order = spec
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise MessageError(f"Image: empty image height={height} width={width}", "image_size")
    if step < width * channels:
        raise MessageError(
            f"Image: step {step} < width {width} * {channels} channels ({encoding})", "image_size"
        )
    buf = as_uint8(msg.data, "Image", "image_size")
    if len(buf) < step * height:
        raise MessageError(
            f"Image: data has {len(buf)} bytes < step {step} * height {height} = {step * height}", "image_size"
        )
    pixels = buf[: step * height].reshape(height, step)[:, : width * channels].reshape(height, width, channels)
    if order == (0, 1, 2) and channels == 3:
        return np.ascontiguousarray(pixels)
    return np.ascontiguousarray(pixels[:, :, list(order)])


def compressed_to_rgb(msg):
    """A ``sensor_msgs/CompressedImage`` (``format`` like 'jpeg', 'png', 'rgb8; jpeg compressed bgr8') ->
    ``(H, W, 3)`` uint8 RGB, decoded by Pillow from the bytes (the container is sniffed from the data;
    image_transport's 'jpeg compressed bgr8' JPEGs decode to the right colours).

    Raises :class:`MessageError`: kind ``image_encoding`` for ``compressedDepth`` payloads, kind
    ``image_decode`` for empty, truncated or corrupt data.
    """
    fmt = str(getattr(msg, "format", ""))
    if "compresseddepth" in fmt.lower():
        raise MessageError(f"CompressedImage: unsupported format '{fmt}' (depth images)", "image_encoding")
    buf = as_uint8(msg.data, "CompressedImage", "image_decode")
    if len(buf) == 0:
        raise MessageError(f"CompressedImage: empty data (format '{fmt}')", "image_decode")
    try:
        with PILImage.open(io.BytesIO(buf.tobytes())) as im:
            im.load()
            return np.asarray(im.convert("RGB"), dtype=np.uint8)
    except Exception as e:  # PIL raises OSError, SyntaxError, ValueError, struct.error, ... on bad data
        raise MessageError(
            f"CompressedImage: cannot decode {len(buf)} bytes (format '{fmt}'): {type(e).__name__}: {e}",
            "image_decode",
        ) from e


def camera_info_to_intrinsics(msg):
    """A ``sensor_msgs/CameraInfo`` -> ``(K, (width, height))``: ``K`` 3x3 float64 from ``msg.k`` (row-major,
    9 values; ``msg.K`` for ROS 1 bags).

    The images are assumed rectified: the distortion model and coefficients are ignored (see the module
    docstring). Raises :class:`MessageError` kind ``camera_info_k`` when K does not have 9 values, is all
    zero (an uncalibrated camera), is not finite, has fx <= 0 or fy <= 0, or its last row is not
    ``[0, 0, 1]``; kind ``camera_info_size`` when width or height is not positive.
    """
    k = getattr(msg, "k", None)
    if k is None:
        k = getattr(msg, "K", None)
    try:
        K = np.asarray(k if k is not None else [], dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as e:
        raise MessageError(f"CameraInfo: K is not numeric ({e})", "camera_info_k") from e
    if K.size != 9:
        raise MessageError(f"CameraInfo: K has {K.size} values, expected 9", "camera_info_k")
    K = K.reshape(3, 3)
    if not np.isfinite(K).all():
        raise MessageError(f"CameraInfo: K is not finite: {K.tolist()}", "camera_info_k")
    if not K.any():
        raise MessageError("CameraInfo: K is all zero (camera not calibrated)", "camera_info_k")
    if K[0, 0] <= 0 or K[1, 1] <= 0:
        raise MessageError(f"CameraInfo: K has fx={K[0, 0]} fy={K[1, 1]}, both must be > 0", "camera_info_k")
    if not np.array_equal(K[2], [0.0, 0.0, 1.0]):
        raise MessageError(f"CameraInfo: K last row is {K[2].tolist()}, expected [0, 0, 1]", "camera_info_k")
    width, height = int(msg.width), int(msg.height)
    if width <= 0 or height <= 0:
        raise MessageError(f"CameraInfo: image size width={width} height={height}", "camera_info_size")
    return K, (width, height)


# ---------------------------------------------------------------------------------------------- builders
def _check_rgb(image, who):
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"{who}: image must be (H, W, 3) uint8 RGB, got {image.shape} {image.dtype}")
    return image


def rgb_to_image(image, header):
    """``(H, W, 3)`` uint8 RGB -> ``sensor_msgs.msg.Image`` (encoding rgb8, step = 3 W, no padding)."""
    from sensor_msgs.msg import Image  # the ros extra (optional)

    image = _check_rgb(image, "rgb_to_image")
    h, w = image.shape[:2]
    msg = Image(header=header, height=h, width=w, encoding="rgb8", is_bigendian=0, step=3 * w)
    msg.data = to_byte_array(np.ascontiguousarray(image).tobytes())
    return msg


def rgb_to_compressed(image, header, quality=95):
    """``(H, W, 3)`` uint8 RGB -> ``sensor_msgs.msg.CompressedImage`` (JPEG via Pillow, format 'jpeg')."""
    image = _check_rgb(image, "rgb_to_compressed")
    out = io.BytesIO()
    PILImage.fromarray(np.ascontiguousarray(image), "RGB").save(out, format="JPEG", quality=int(quality))
    return jpeg_bytes_to_compressed(out.getvalue(), header)


def jpeg_bytes_to_compressed(jpeg, header):
    """JPEG file bytes -> ``sensor_msgs.msg.CompressedImage`` (format 'jpeg') without re-encoding (a log
    player publishes the nuScenes JPEG files as they are). ``ValueError`` if the bytes are not a JPEG."""
    from sensor_msgs.msg import CompressedImage  # the ros extra (optional)

    jpeg = bytes(jpeg)
    if not jpeg.startswith(b"\xff\xd8"):
        raise ValueError(f"jpeg_bytes_to_compressed: data does not start with the JPEG SOI marker ({jpeg[:4]!r})")
    msg = CompressedImage(header=header, format="jpeg")
    msg.data = to_byte_array(jpeg)
    return msg


def intrinsics_to_camera_info(K, width, height, header):
    """3x3 ``K`` -> ``sensor_msgs.msg.CameraInfo`` of a rectified camera: ``k = K``, ``p = [K | 0]``,
    ``r = I``, distortion_model 'plumb_bob' with ``d`` = five zeros."""
    from sensor_msgs.msg import CameraInfo  # the ros extra (optional)

    K = np.asarray(K, dtype=np.float64)
    if K.shape != (3, 3) or not np.isfinite(K).all():
        raise ValueError(f"intrinsics_to_camera_info: K must be a finite 3x3 matrix, got {K.shape}")
    msg = CameraInfo(header=header, width=int(width), height=int(height), distortion_model="plumb_bob")
    msg.d = [0.0] * 5
    msg.k = K.reshape(9).copy()
    msg.r = np.eye(3).reshape(9)
    msg.p = np.concatenate([K, np.zeros((3, 1))], axis=1).reshape(12)
    return msg
