"""ComfyUI AUDIO in and out: its waveform read in any shape, dtype and rate it comes in; the
channels by name (a dialogue-keeping mono mix, a stereo mix of layouts AAC does not carry); a
track cut or padded to the output's length."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping

import numpy as np

from ..common.errors import HaloLipsyError

logger = logging.getLogger("HaloLipsy")


class AudioInputError(HaloLipsyError):
    """The AUDIO input cannot be used; the message says what to connect or change."""


def read_audio(audio) -> tuple[np.ndarray, int]:
    """Return (samples [C, T] float32 in [-1, 1], sample_rate) from a ComfyUI AUDIO value.

    Accepts any Mapping with `waveform` ([B, C, T], [C, T] or [T]; torch or NumPy; float or
    integer samples) and `sample_rate`. Of a batch, the first item is used.
    """
    if audio is None:
        raise AudioInputError(
            "No audio: connect an AUDIO output (LoadAudio, or the audio of GetVideoComponents "
            "/ VHS Load Video) to the Halo-Lipsy 'audio' input.")
    waveform, rate = _field(audio, "waveform"), _field(audio, "sample_rate")
    if waveform is None:
        raise AudioInputError("The 'audio' waveform is None: the audio source produced nothing; "
                              "check the file has an audio track.")
    rate = _check_rate(rate)

    if hasattr(waveform, "detach"):  # torch.Tensor, any dtype or device
        if waveform.dtype.is_floating_point:
            data = waveform.detach().float().cpu().numpy()
        else:
            data = waveform.detach().cpu().numpy()
    else:
        data = np.asarray(waveform)

    if data.ndim == 3:
        if data.shape[0] > 1:
            logger.info("Halo-Lipsy: the AUDIO batch holds %d clips; using the first.", data.shape[0])
        if data.shape[0] == 0:
            data = data.reshape(0, 0)
        else:
            data = data[0]
    elif data.ndim == 1:
        data = data[None, :]
    elif data.ndim != 2:
        raise AudioInputError(
            f"The 'audio' waveform has shape {tuple(data.shape)}; expected [batch, channels, "
            "samples], [channels, samples] or [samples].")
    if data.shape[-1] == 0 or data.shape[0] == 0:
        raise AudioInputError(
            "The audio is empty (0 samples): the source has no audio track or was trimmed to "
            "nothing. Connect audio with speech in it.")

    data = _to_float32(data)
    bad = ~np.isfinite(data)
    if bad.any():
        raise AudioInputError(
            f"The audio holds {int(bad.sum())} NaN or infinite samples out of {data.size}; the "
            "node upstream produced invalid audio. Fix or replace that node's output.")
    return data, rate


def _field(audio, key):
    """audio[key], for a dict or any lazy Mapping (VideoHelperSuite hands over one)."""
    try:
        return audio[key]
    except (KeyError, TypeError, IndexError):
        kind = "" if isinstance(audio, Mapping) else f" (it is a {type(audio).__name__})"
        raise AudioInputError(
            f"The 'audio' input has no '{key}'{kind}: it is not ComfyUI AUDIO. Connect an AUDIO "
            "output (LoadAudio or GetVideoComponents).") from None


def _check_rate(rate) -> int:
    if hasattr(rate, "item") and getattr(rate, "ndim", 0) == 0:
        rate = rate.item()
    if isinstance(rate, bool) or not isinstance(rate, (int, float, np.integer, np.floating)):
        raise AudioInputError(
            f"The audio sample_rate is {rate!r}; it must be a positive whole number of Hz "
            "such as 16000, 44100 or 48000.")
    if not math.isfinite(float(rate)) or float(rate) != int(rate) or int(rate) <= 0:
        raise AudioInputError(
            f"The audio sample_rate is {rate!r}; it must be a positive whole number of Hz "
            "such as 16000, 44100 or 48000.")
    return int(rate)


def _to_float32(data: np.ndarray) -> np.ndarray:
    if data.dtype == np.bool_:
        raise AudioInputError("The audio waveform is boolean; expected float or integer samples.")
    if np.issubdtype(data.dtype, np.unsignedinteger):  # unsigned PCM is centred on mid-scale
        mid = (np.iinfo(data.dtype).max + 1) / 2
        return ((data.astype(np.float64) - mid) / mid).astype(np.float32)
    if np.issubdtype(data.dtype, np.integer):
        return (data.astype(np.float32) / np.float32(-np.iinfo(data.dtype).min))
    if not np.issubdtype(data.dtype, np.floating):
        raise AudioInputError(f"The audio waveform has dtype {data.dtype}; expected float or "
                              "integer samples.")
    return data.astype(np.float32, copy=False)


# What the channels of a sound without names hold (a ComfyUI AUDIO carries none): FFmpeg's
# default layout for that many channels, the order WAV and FFmpeg use.
DEFAULT_CHANNELS = {1: ("FC",), 2: ("FL", "FR"), 3: ("FL", "FR", "FC"), 4: ("FL", "FR", "FC", "BC"),
                    5: ("FL", "FR", "FC", "BL", "BR"), 6: ("FL", "FR", "FC", "LFE", "BL", "BR"),
                    7: ("FL", "FR", "FC", "LFE", "BC", "SL", "SR"),
                    8: ("FL", "FR", "FC", "LFE", "BL", "BR", "SL", "SR")}


LFE = ("LFE", "LFE2")  # low-frequency effects: never dialogue, and no place in a stereo mix


def channel_names(samples: np.ndarray, names=None) -> tuple:
    """`names` (FFmpeg's channel names: FL, FR, FC, LFE, BL, SL ...) when they fit `samples`, else
    the default layout for its channel count (unknown counts: all treated as front channels)."""
    count = samples.shape[0]
    if names is not None and len(names) == count and all(names):
        return tuple(names)
    return DEFAULT_CHANNELS.get(count, ("FL", "FR") * (count // 2) + ("FC",) * (count % 2))


def downmix(samples: np.ndarray, names=None) -> np.ndarray:
    """[C, T] -> [T] mono that keeps the dialogue, by channel name (`channel_names`): a lone
    channel as it is; the centre (where 5.1 and 3.0 put the dialogue) at full weight, the other
    fronts at half (stereo: their mean), surrounds at 0.35, the LFE left out."""
    names = channel_names(samples, names)
    if len(names) == 1:
        return samples[0]
    weights = np.array([0.0 if n in LFE else 1.0 if n == "FC" else 0.5 if n.startswith("F") else 0.35
                        for n in names], dtype=np.float32)
    return (weights @ samples).astype(np.float32, copy=False)


def stereo_mix(samples: np.ndarray, names=None) -> np.ndarray:
    """[C, T] -> [2, T] by channel name, as FFmpeg mixes down: each side's front at full weight,
    the centre and that side's surrounds at -3 dB, back-centre into both at -6 dB, the LFE left
    out; scaled so no channel's full-scale signal can clip."""
    names = channel_names(samples, names)
    left, right = np.zeros(len(names)), np.zeros(len(names))
    for k, name in enumerate(names):
        if name in LFE:
            continue
        if name == "FC":
            left[k] = right[k] = 0.7071
        elif name in ("BC", "TC", "TBC", "TFC"):
            left[k] = right[k] = 0.5
        elif name.endswith("L") or name in ("FLC",):
            left[k] = 1.0 if name in ("FL", "FLC") else 0.7071
        elif name.endswith("R") or name in ("FRC",):
            right[k] = 1.0 if name in ("FR", "FRC") else 0.7071
        else:
            left[k] = right[k] = 0.5
    matrix = np.stack([left, right])
    matrix /= max(1.0, float(matrix.sum(axis=1).max()))
    return (matrix.astype(np.float32) @ samples).astype(np.float32, copy=False)


def fit_audio(samples: np.ndarray, sample_rate: int, n_frames: int, fps: float) -> dict:
    """ComfyUI AUDIO of `samples` ([C, T], own rate and channels) cut or padded with silence to
    exactly n_frames / fps seconds, ready for CreateVideo or VHS Video Combine."""
    import torch

    out = cut_or_pad(samples, int(round(n_frames * sample_rate / float(fps))))
    return {"waveform": torch.from_numpy(out[None]), "sample_rate": int(sample_rate)}


def cut_or_pad(samples: np.ndarray, length: int) -> np.ndarray:
    """[C, length] float32: `samples` ([C, T]) cut, or padded with silence, to `length`."""
    out = np.zeros((samples.shape[0], length), dtype=np.float32)
    keep = min(length, samples.shape[1])
    out[:, :keep] = samples[:, :keep]
    return out
