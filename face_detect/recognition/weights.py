"""Finding the two face recognition files and loading them once.

dlib's CC0 models: `dlib_face_recognition_resnet_model_v1.dat` (22 MB) and
`shape_predictor_5_face_landmarks.dat` (9 MB). The registry's `face_recognition_models` package
carries both (requirements.txt installs it; it is found without being imported, since its
`__init__` needs pkg_resources); users without it put the two files in `models/wav2lip/` or
this pack's `checkpoints/`. Every file is checked against its SHA-256 before it is read.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from ...common.errors import HaloLipsyError
from .dlib_file import DlibFormatError
from .embedder import FaceRecognizer
from .landmarks import load_shape_predictor
from .resnet import load_resnet

logger = logging.getLogger("HaloLipsy")

PACKAGE = "face_recognition_models"


@dataclass(frozen=True)
class WeightsFile:
    name: str
    sha256: str
    megabytes: int
    url: str


NETWORK = WeightsFile("dlib_face_recognition_resnet_model_v1.dat",
                      "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30", 22,
                      "http://dlib.net/files/dlib_face_recognition_resnet_model_v1.dat.bz2")
LANDMARKS = WeightsFile("shape_predictor_5_face_landmarks.dat",
                        "c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888", 9,
                        "http://dlib.net/files/shape_predictor_5_face_landmarks.dat.bz2")


class RecognitionWeightsError(HaloLipsyError):
    pass


def package_dir() -> Path | None:
    """The models folder of an installed face_recognition_models, found without importing it."""
    try:
        spec = importlib.util.find_spec(PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "models"


def find_file(weights: WeightsFile, search_dirs) -> Path | None:
    folders = [Path(d) for d in search_dirs] + [d for d in [package_dir()] if d is not None]
    for folder in folders:
        path = folder / weights.name
        if path.is_file():
            return path
    return None


def _read_checked(path: Path, weights: WeightsFile) -> bytes:
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != weights.sha256:
        raise RecognitionWeightsError(
            f"{path} is not dlib's {weights.name} ({len(data) / 1e6:.1f} MB; its SHA-256 differs: "
            f"a broken download or another file). Delete it and put the original there "
            f"({weights.megabytes} MB, unpacked from {weights.url}), or reinstall the "
            f"{PACKAGE} package: python -m pip install --force-reinstall {PACKAGE}")
    return data


_loaded: dict = {}
_said_missing: set = set()


def load_recognizer(search_dirs) -> FaceRecognizer | None:
    """The face recognizer from the files found in `search_dirs` or the installed package
    (cached by path); None when they are not there, said once in the log. Raises
    RecognitionWeightsError for a file that is there but not the right one."""
    paths = [find_file(w, search_dirs) for w in (NETWORK, LANDMARKS)]
    if any(p is None for p in paths):
        places = ", ".join(str(Path(d)) for d in search_dirs) or "models/wav2lip"
        key = tuple(str(p) for p in paths)
        if key not in _said_missing:
            _said_missing.add(key)
            logger.warning(
                "Halo-Lipsy: the face recognition files are not installed, so who is who cannot "
                "be checked: a face that is lost is not taken up again until the next cut (its "
                "frames keep their real mouth), and `marked` follows nobody. Install them with "
                "`python -m pip install %s`, or put %s and %s in one of: %s.",
                PACKAGE, NETWORK.name, LANDMARKS.name, places)
        return None
    key = tuple((os.path.realpath(p), p.stat().st_size, p.stat().st_mtime_ns) for p in paths)
    recognizer = _loaded.get(key)
    if recognizer is None:
        network_bytes, landmark_bytes = (_read_checked(p, w) for p, w in zip(paths, (NETWORK, LANDMARKS)))
        try:
            recognizer = FaceRecognizer(load_shape_predictor(landmark_bytes), load_resnet(network_bytes))
        except DlibFormatError as err:  # only a file the hash vouched for gets here
            raise RecognitionWeightsError(f"{paths[0]} or {paths[1]} could not be read: {err}") from None
        _loaded.clear()
        _loaded[key] = recognizer
    return recognizer


def release_recognizer():
    _loaded.clear()
