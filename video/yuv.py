"""The source's own 8-bit YUV 4:2:0 samples, packed in one array as VideoFrame.from_ndarray takes
it: packing planes, views of them, and boxes on whole 2x2 chroma blocks."""

from __future__ import annotations

import numpy as np


def even_box(box, width: int, height: int):
    """`box` grown to whole 2x2 chroma blocks of a frame padded to even sides."""
    x1, y1, x2, y2 = box
    return x1 - x1 % 2, y1 - y1 % 2, min(even(width), x2 + x2 % 2), min(even(height), y2 + y2 % 2)


def plane_array(plane) -> np.ndarray:
    return np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, :plane.width]


def pack_yuv(y: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Y (H x W) and chroma (ceil(H/2) x ceil(W/2)) planes -> a new packed (H2 * 3/2, W2)
    yuv420p array with H2, W2 even (the last row or column repeated)."""
    height, width = y.shape
    h2, w2 = even(height), even(width)
    out = np.empty((h2 * 3 // 2, w2), np.uint8)
    out[:height, :width] = y
    out[height:h2, :width] = y[-1:]  # odd sides: repeat the edge
    out[:h2, width:w2] = out[:h2, width - 1:width]
    chroma = out[h2:].reshape(-1)
    quarter = h2 * w2 // 4
    chroma[:quarter] = u.reshape(-1)
    chroma[quarter:] = v.reshape(-1)
    return out


def even(n: int) -> int:
    return int(n) + int(n) % 2


def planes_of(packed: np.ndarray):
    """Views of a packed yuv420p array's Y, U and V planes."""
    h2, w2 = packed.shape[0] * 2 // 3, packed.shape[1]
    chroma = packed[h2:].reshape(-1)
    quarter = h2 * w2 // 4
    return (packed[:h2], chroma[:quarter].reshape(h2 // 2, w2 // 2),
            chroma[quarter:].reshape(h2 // 2, w2 // 2))
