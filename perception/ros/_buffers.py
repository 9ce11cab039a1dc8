"""Byte payloads of messages as numpy ``uint8`` arrays, whatever container the reader handed over."""

import array

import numpy as np

from perception.ros.errors import MessageError


def as_uint8(data, what, kind):
    """``data`` (bytes, bytearray, memoryview, array.array, numpy array, list of ints) -> 1-D uint8 array.

    Zero-copy for buffer objects and uint8 arrays. ``what`` names the message type for errors."""
    if data is None:
        return np.zeros(0, np.uint8)
    if isinstance(data, np.ndarray):
        if data.dtype == np.uint8:
            return data.reshape(-1)
        if data.dtype == np.int8:
            return data.reshape(-1).view(np.uint8)
        data = data.tolist()  # odd dtype: fall through to the range-checked path
    elif isinstance(data, (bytes, bytearray, memoryview)):
        return np.frombuffer(data, dtype=np.uint8)
    elif isinstance(data, array.array):
        return np.frombuffer(data, dtype=np.uint8)  # raw bytes whatever the typecode
    try:
        arr = np.asarray(data)
    except (TypeError, ValueError) as e:
        raise MessageError(f"{what}: data of type {type(data).__name__} is not a byte sequence", kind) from e
    if arr.size == 0:
        return np.zeros(0, np.uint8)
    if arr.dtype.kind not in "iu" or arr.min() < 0 or arr.max() > 255:
        raise MessageError(f"{what}: data is not a sequence of bytes (dtype {arr.dtype})", kind)
    return arr.astype(np.uint8).reshape(-1)


def to_byte_array(buf):
    """Bytes-like -> ``array.array('B')`` (what rclpy stores for ``uint8[]``; memcpy, no per-byte checks)."""
    out = array.array("B")
    out.frombytes(buf if isinstance(buf, (bytes, bytearray)) else bytes(buf))
    return out
