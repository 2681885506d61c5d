"""Fitting one set of points onto another: the similarity transform face alignment is built on
(dlib's face chips for who is who, the FFHQ layout for face restoration). NumPy only."""

from __future__ import annotations

import numpy as np


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
