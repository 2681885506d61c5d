"""What both VIDEO routes write besides the picture: the sound, placed on the video's clock and put
in a layout AAC carries, and the encoder that deletes its file when anything fails."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..common.errors import HaloLipsyError

logger = logging.getLogger("HaloLipsy")


@dataclass
class PlacedSound:
    """The sound on the video's clock: `samples` ([C, T] at `rate`) start `lead` seconds before
    the first frame (sound that starts after the picture is padded with silence); `end` is where
    it ends, in seconds from the first frame."""

    samples: np.ndarray
    rate: int
    lead: float
    channels: tuple | None = None  # FFmpeg's channel names, when the file says

    @property
    def lead_samples(self) -> int:
        return int(round(self.lead * self.rate))

    @property
    def end(self) -> float:
        return (self.samples.shape[1] - self.lead_samples) / self.rate

    def for_mel(self) -> dict:
        """AUDIO from the first frame on (what the mouth follows): the dialogue-keeping mono mix,
        made by channel name (the centre is the centre, whatever the layout)."""
        from ..audio import downmix

        mono = downmix(self.samples[:, self.lead_samples:], self.channels)
        return {"waveform": mono[None, None], "sample_rate": self.rate}

    def for_output(self):
        """The whole track as the writer's video.Sound (the writer ends it where the output
        ends)."""
        return aac_sound(self.samples, self.rate, self.channels)


def aac_sound(samples, rate, channels=None):
    """A video.Sound: `samples` in their own layout where AAC carries it (by channel name; a
    ComfyUI AUDIO's channels: FFmpeg's default for the count), else mixed to stereo by name."""
    from .. import audio as audio_mod
    from .. import video as video_mod

    names = audio_mod.channel_names(samples, channels)
    layout = video_mod.aac_layout(names)
    if layout is None:
        samples, layout = audio_mod.stereo_mix(samples, names), "stereo"
    return video_mod.Sound(samples, int(rate), layout)


def video_sound(source, info, audio) -> PlacedSound:
    """The connected AUDIO (it starts with the first frame), or the video's own sound placed by
    its start time relative to the first frame."""
    from .. import audio as audio_mod
    from .. import video as video_mod

    if audio is not None:
        samples, rate = audio_mod.read_audio(audio)
        return PlacedSound(samples, rate, 0.0)
    track = video_mod.read_audio(source, info.edits)
    if track is None:
        raise HaloLipsyError(
            "the video has no sound, and the speech was not given (or output_sound "
            "is 'video'): connect the speech (Load Audio, a TTS node) to the node's 'audio' "
            "input, or pass --audio SPEECH; with output_sound 'video' the video needs its own "
            "sound.")
    offset = track.start - info.start  # > 0: the sound starts after the first frame
    samples = track.samples
    if offset > 0:
        pad = int(round(offset * track.rate))
        samples = np.concatenate([np.zeros((samples.shape[0], pad), np.float32), samples], axis=1)
    sound = PlacedSound(samples, track.rate, max(0.0, -offset), track.channels)
    if sound.end <= 0:
        raise HaloLipsyError(
            "the video's sound ends before its picture starts; connect the speech "
            "to the 'audio' input (or pass --audio).")
    if abs(offset) >= 0.001:
        logger.info("Halo-Lipsy: the sound starts %.3f s %s the picture; kept that way.",
                    abs(offset), "after" if offset > 0 else "before")
    return sound


@contextlib.contextmanager
def encoder(destination, *writer_args):
    """A video.VideoWriter to `destination` that deletes what it wrote when anything fails
    (an error, an interrupt): nothing half-written stays behind."""
    from .. import video as video_mod

    writer = None
    try:
        writer = video_mod.VideoWriter(destination, *writer_args)
        yield writer
    except BaseException:
        if writer is not None:
            writer.abort()
        elif isinstance(destination, (str, Path)):
            Path(destination).unlink(missing_ok=True)
        raise
