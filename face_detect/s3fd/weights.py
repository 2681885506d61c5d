"""Finding (or fetching once) the S3FD detector weights, s3fd-619a316812.pth (86 MB).

The digits in the name are the start of the file's SHA-256, which is checked for any file
named so and for every download.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import torch

from ...common.errors import HaloLipsyError

logger = logging.getLogger("HaloLipsy")

S3FD_FILENAME = "s3fd-619a316812.pth"
S3FD_NAMES = (S3FD_FILENAME, "s3fd.pth")
S3FD_SHA256_PREFIX = "619a316812"
S3FD_URL = "https://www.adrianbulat.com/downloads/python-fan/" + S3FD_FILENAME


class DetectorWeightsError(HaloLipsyError):
    pass


def hub_checkpoint_dir() -> Path:
    """Where face-alignment (through torch.hub) keeps the file."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def search_dirs(extra_dirs) -> list[Path]:
    return [Path(d) for d in extra_dirs] + [hub_checkpoint_dir()]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


_verified: set = set()


def _verify(path: Path):
    stat = path.stat()
    key = (os.path.realpath(path), stat.st_size, stat.st_mtime_ns)
    if key in _verified:
        return
    if not sha256_of(path).startswith(S3FD_SHA256_PREFIX):
        raise DetectorWeightsError(
            f"{path} is not the S3FD detector file: its SHA-256 does not start with "
            f"{S3FD_SHA256_PREFIX} (a broken or different download). Delete it and put the "
            f"original {S3FD_FILENAME} (86 MB) there.")
    _verified.add(key)


def _download(url: str, destination: Path):
    torch.hub.download_url_to_file(url, str(destination), hash_prefix=S3FD_SHA256_PREFIX,
                                   progress=False)


def find_s3fd_weights(extra_dirs=()) -> Path:
    """The S3FD weights file: first found in the given folders, then the torch hub cache, else
    downloaded once into the torch hub cache (hash checked)."""
    dirs = search_dirs(extra_dirs)
    for folder in dirs:
        for name in S3FD_NAMES:
            path = folder / name
            if path.is_file():
                if S3FD_SHA256_PREFIX in name:
                    _verify(path)
                return path
    places = ", ".join(str(d) for d in dirs)
    offline_help = (f"Put {S3FD_FILENAME} (86 MB, from {S3FD_URL}) in one of: {places}. Or give a "
                    "face_mask (the node's face_mask input, or --face-mask), which skips face "
                    "detection.")
    target = hub_checkpoint_dir() / S3FD_FILENAME
    logger.info("Halo-Lipsy: downloading the S3FD face detector weights to %s", target)
    # folders made for the download are removed again if it fails: a failed run writes nothing
    made = [d for d in (target.parent, *target.parent.parents) if not d.exists()]
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        _download(S3FD_URL, target)
    except Exception as err:  # noqa: BLE001 - any failure to fetch gets the same advice
        target.unlink(missing_ok=True)
        _remove_empty(made)
        if "hash" in str(err).lower():
            raise DetectorWeightsError(
                f"The downloaded S3FD weights failed their SHA-256 check ({err}). {offline_help}") from None
        raise DetectorWeightsError(
            f"S3FD face detector weights not found and could not be downloaded ({err}). "
            f"{offline_help}") from None
    try:
        _verify(target)
    except DetectorWeightsError:
        target.unlink(missing_ok=True)
        _remove_empty(made)
        raise
    return target


def _remove_empty(folders):
    """Remove the given folders, innermost first, as long as they are empty."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return
