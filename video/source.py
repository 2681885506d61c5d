"""Opening what PyAV reads, and what part of it is used (the edits a VIDEO carries)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..common.errors import HaloLipsyError

# FFmpeg demuxers that open any text or data file as "video"; none of them is a recording.
NOT_VIDEO_FORMATS = {"tty", "bin", "xbin", "adf", "idf", "image2pipe", "data"}


class VideoInputError(HaloLipsyError):
    """The video cannot be used; the message says why and what to do."""


@dataclass(frozen=True)
class Edits:
    """The part of a file that is used: a trim on its clock (seconds; duration 0: to the end)
    and a crop (x, y, width, height) of the upright picture. ComfyUI's Trim Video and Load
    Video's edit input make these."""

    start: float = 0.0
    duration: float = 0.0
    crop: tuple | None = None
    size: tuple | None = None  # (width, height) the VIDEO says its frames have, when it says

    def contains(self, t: float) -> bool:
        return t >= self.start - 1e-9 and (not self.duration or t < self.start + self.duration - 1e-9)


def _rewind(source):
    if hasattr(source, "seek"):
        source.seek(0)
    return source


def source_name(source, what: str) -> str:
    return f"{what} '{source}'" if isinstance(source, (str, os.PathLike)) else what


def open_source(source, what: str = "the video"):
    """Open `source` for reading; `what` names it in messages (the video, the speech file)."""
    import av

    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists() and "%" not in path.name:  # img%03d.png: FFmpeg's image sequences
            raise VideoInputError(f"{source_name(source, what)} does not exist; check the path.")
        if path.is_dir():
            raise VideoInputError(f"{source_name(source, what)} is a folder; give a file.")
        if path.exists() and not os.access(path, os.R_OK):
            raise VideoInputError(f"{source_name(source, what)} cannot be read (permission denied); "
                                  "check the file's permissions.")
    try:
        container = av.open(_rewind(source), mode="r")
    except PermissionError:
        raise VideoInputError(f"{source_name(source, what)} cannot be read (permission denied); check "
                              "the file's permissions.") from None
    except (av.error.FFmpegError, OSError, ValueError) as err:
        raise VideoInputError(f"{source_name(source, what)} is not a media file that can be read "
                              f"({err}). Give a video (mp4, mov, mkv, webm ...) or, for speech, "
                              "an audio file (wav, mp3, m4a, flac ...).") from None
    if container.format.name in NOT_VIDEO_FORMATS:
        container.close()
        raise VideoInputError(f"{source_name(source, what)} is not a media file (FFmpeg reads it as "
                              f"'{container.format.name}', a text or data file). Give a video "
                              "or audio file.")
    return container


def flag_bits(value) -> int:
    """An FFmpeg flag set as an int (PyAV gives an int, or a Flag enum on some versions)."""
    return int(getattr(value, "value", value) or 0)
