"""The aligned face the recognition network was trained on: 150x150 px, the five landmarks on
dlib's template with 25% padding (dlib's get_face_chip_details(shape, 150, 0.25))."""

from __future__ import annotations

import cv2
import numpy as np

from .resnet import CHIP_SIZE

PADDING = 0.25
# where dlib's face chips put the 5 landmarks, in units of the unpadded chip
TEMPLATE = np.array([(0.8595674595992, 0.2134981538014), (0.6460604764104, 0.2289674387677),
                     (0.1205750620789, 0.2137274526848), (0.3340850613712, 0.2290642403242),
                     (0.4901123135679, 0.6277975316475)])


def similarity(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The 2x3 least-squares similarity transform (scale, rotation, shift) taking `source`
    points onto `target` (Umeyama's method, as dlib's find_similarity_transform)."""
    src, dst = np.asarray(source, np.float64), np.asarray(target, np.float64)
    mean_src, mean_dst = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - mean_src, dst - mean_dst
    sigma = (src_c ** 2).sum() / len(src)
    cov = dst_c.T @ src_c / len(src)
    u, d, vt = np.linalg.svd(cov)
    s = np.eye(2)
    if np.linalg.det(cov) < 0 or (np.linalg.det(cov) == 0 and np.linalg.det(u) * np.linalg.det(vt) < 0):
        s[1, 1] = -1
    scale = 1.0 if sigma == 0 else float(np.trace(np.diag(d) @ s)) / sigma
    linear = scale * (u @ s @ vt)
    return np.hstack([linear, (mean_dst - linear @ mean_src)[:, None]])


def chip_to_image(points: np.ndarray) -> np.ndarray:
    """The 2x3 transform from chip pixels to picture pixels for a face with these landmarks,
    as dlib extracts a chip: the similarity fitted to the template gives the chip's centre, turn
    and scale, and the chip's first and last pixels span its rectangle, whose sides are one
    pixel shorter than the chip times the scale (so a pixel is (size x scale - 1) / (size - 1))."""
    template = (PADDING + TEMPLATE) / (2 * PADDING + 1) * CHIP_SIZE
    fitted = similarity(template, points)
    linear = fitted[:, :2]
    scale = float(np.hypot(linear[0, 0], linear[1, 0]))
    centre = linear @ np.array([CHIP_SIZE / 2, CHIP_SIZE / 2]) + fitted[:, 2]
    linear = linear * ((CHIP_SIZE * scale - 1) / (CHIP_SIZE - 1) / scale)
    middle = (CHIP_SIZE - 1) / 2
    return np.hstack([linear, (centre - linear @ np.array([middle, middle]))[:, None]])


def face_chip(rgb: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(150, 150, 3) uint8: the face with landmarks `points` cut out of `rgb` (H, W, 3 uint8),
    bilinear, black outside the picture."""
    return cv2.warpAffine(rgb, chip_to_image(points), (CHIP_SIZE, CHIP_SIZE),
                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)
