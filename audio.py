"""ComfyUI AUDIO -> mono 16 kHz -> Wav2Lip's mel -> one 80x16 mel window per output frame.

Plain NumPy/SciPy/torch; no ComfyUI import. The numbers here come from how the released
Wav2Lip weights were trained (hparams of the original Wav2Lip: 16 kHz, n_fft 800, hop 200,
80 Slaney mel bands 55-7600 Hz, pre-emphasis 0.97) and must not drift: a different STFT
padding or filter bank silently ruins lip sync.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping

import numpy as np
from scipy.signal import resample_poly

from .errors import HaloLipsyError

logger = logging.getLogger("HaloLipsy")

MODEL_SAMPLE_RATE = 16000
N_FFT = 800
HOP = 200
N_MELS = 80
FMIN = 55.0
FMAX = 7600.0
PREEMPHASIS = 0.97
MEL_FRAMES_PER_SECOND = MODEL_SAMPLE_RATE / HOP  # 80
MEL_WINDOW = 16  # mel frames the generator sees per video frame (200 ms)
SILENCE = -4.0  # normalised mel value of digital silence
_STFT_CHUNK_FRAMES = 16384  # bounds the complex STFT buffer to ~50 MB for any audio length


class AudioInputError(HaloLipsyError):
    """The AUDIO input cannot be used; the message says what to connect or change."""


# ---------------------------------------------------------------------------- reading AUDIO


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


def to_model_rate(samples: np.ndarray, rate: int) -> np.ndarray:
    """Down-mix [C, T] to mono (`downmix`) and resample to 16 kHz with a band-limited polyphase
    filter."""
    mono = downmix(samples)
    if rate == MODEL_SAMPLE_RATE:
        return np.ascontiguousarray(mono, dtype=np.float32)
    g = math.gcd(MODEL_SAMPLE_RATE, rate)
    return resample_poly(mono, MODEL_SAMPLE_RATE // g, rate // g).astype(np.float32, copy=False)


# ---------------------------------------------------------------------------- mel


def mel_filter_bank() -> np.ndarray:
    """The (80, 401) Slaney-normalised triangular filter bank Wav2Lip was trained with, from the
    library it was trained with (keyword arguments: positional ones broke in librosa 0.10)."""
    import librosa.filters  # ~1.5 s to import: only when the first mel is computed

    return librosa.filters.mel(sr=MODEL_SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS, fmin=FMIN,
                               fmax=FMAX, dtype=np.float64)


_MEL_BANK = None


def melspectrogram(samples_16k: np.ndarray) -> np.ndarray:
    """Wav2Lip's normalised log-mel spectrogram of mono 16 kHz audio: (80, 1 + len // 200) float32.

    The STFT is the one of the librosa release Wav2Lip was trained with (centred, reflect-padded,
    periodic Hann; librosa >= 0.10 pads with zeros by default), computed here in chunks of
    frames: for one hour of audio it measured 2.7 s and +0.9 GB peak memory, against 6.3 s and
    +3.0 GB for librosa.stft(pad_mode="reflect") + the same filter bank (2-core AMD EPYC,
    librosa 0.11), as the complex spectrogram of the whole hour is never held. The two agree
    to 2e-7."""
    global _MEL_BANK
    if _MEL_BANK is None:
        _MEL_BANK = mel_filter_bank()
    x = np.asarray(samples_16k, dtype=np.float64).reshape(-1)
    if x.size == 0:
        raise AudioInputError("The audio is empty (0 samples); connect audio with speech in it.")
    emphasised = np.empty_like(x)
    emphasised[0] = x[0]
    np.subtract(x[1:], PREEMPHASIS * x[:-1], out=emphasised[1:])
    padded = np.pad(emphasised, N_FFT // 2, mode="reflect")  # librosa's centred, reflect-padded frames
    del emphasised
    n_frames = 1 + x.size // HOP
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)  # periodic Hann
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP]
    out = np.empty((N_MELS, n_frames), dtype=np.float32)
    for start in range(0, n_frames, _STFT_CHUNK_FRAMES):
        chunk = frames[start:start + _STFT_CHUNK_FRAMES] * window
        magnitude = np.abs(np.fft.rfft(chunk, axis=1))
        mel = _MEL_BANK @ magnitude.T
        db = 20.0 * np.log10(np.maximum(1e-5, mel)) - 20.0
        out[:, start:start + chunk.shape[0]] = np.clip(8.0 * (db + 100.0) / 100.0 - 4.0, -4.0, 4.0)
    return out


# ---------------------------------------------------------------------------- frames and windows


def check_fps(fps) -> float:
    try:
        value = float(fps)
    except (TypeError, ValueError):
        value = float("nan")
    if not math.isfinite(value) or value <= 0:
        raise AudioInputError(
            f"fps is {fps!r}; it must be a positive frame rate such as 25 or 29.97. Wire the "
            "fps output of GetVideoComponents (or VHS Video Info) into it.")
    return value


def window_starts(frame_indices, fps: float, sync_offset: float = 0.0,
                  mel_step_multiplier: float = 1.0) -> np.ndarray:
    """start(i) = int((i * mel_step_multiplier - sync_offset) * 80 / fps), element-wise."""
    i = np.asarray(frame_indices, dtype=np.float64)
    return np.trunc((i * mel_step_multiplier - sync_offset) * MEL_FRAMES_PER_SECOND / fps).astype(np.int64)


def mel_windows(mel: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """(len(starts), 80, 16) float32 windows; columns before or after the audio are silence (-4)."""
    starts = np.asarray(starts, dtype=np.int64)
    if starts.size == 0:
        return np.empty((0, mel.shape[0], MEL_WINDOW), dtype=np.float32)
    # Copy only the stretch the windows touch, silence-filled where it lies outside the audio,
    # so a far sync offset or a short clip never needs a special case.
    lo, hi = int(starts.min()), int(starts.max()) + MEL_WINDOW
    region = np.full((mel.shape[0], hi - lo), SILENCE, dtype=np.float32)
    a, b = max(lo, 0), min(hi, mel.shape[1])
    if b > a:
        region[:, a - lo:b - lo] = mel[:, a:b]
    view = np.lib.stride_tricks.sliding_window_view(region, MEL_WINDOW, axis=1)  # (80, n, 16), no copy
    return np.ascontiguousarray(view[:, starts - lo].transpose(1, 0, 2))


# Silence, for keeping the real mouth where nobody speaks (the `silence` setting)
SPEECH_PROBABILITY = 0.5  # the voice activity detector's call: speech starts from this probability
END_PROBABILITY = 0.35  # ... and goes on down to this one (Silero's own advice: 0.15 lower)
EDGE_RANGE_DB = 30.0  # chunks at a speech stretch's edges this far under its level are room tone
MIN_SPEECH_S = 0.1  # shorter blips of "speech" (a click, a cough in the room tone) are not
MERGE_GAP_S = 0.15  # shorter gaps (between words) are speech
MIN_PAUSE_S = 0.3  # a pause at least this long shows the real mouth, fully, in its middle
FADE_S = 0.08  # the generated mouth fades out (and in) over this long, inside the pause
VAD_LEVEL = 0.3  # the detector hears every track with its loud peaks here (quiet = loud)
VAD_MAX_GAIN_DB = 40.0  # so a track of room tone alone is not raised to speech level
LOUD_PERCENTILE = 99.9  # "its loud peaks": this percentile of the magnitude


def speech_runs(samples_16k: np.ndarray, check_interrupt=None) -> np.ndarray:
    """Where somebody speaks in mono 16 kHz audio: (k, 2) start and end times in seconds.

    A voice activity detector (vad.py) decides what is speech, whatever its loudness: room
    tone, hiss, breaths, coughs, a door slam and music without a voice are not; a whisper
    and a laugh are. Speech starts where its probability reaches SPEECH_PROBABILITY and goes
    on while it stays above END_PROBABILITY. Its calls lag the end of a word by a chunk or
    two, so each stretch's edges are trimmed of chunks whose level lies EDGE_RANGE_DB under
    the stretch's own (room tone, not a word's tail); that places them within a chunk of the
    true edges, so Silero's padding (30 ms) would only eat into short pauses, and is not
    added. Gaps under MERGE_GAP_S are speech; blips under MIN_SPEECH_S are not. The track is
    heard at one loudness (its loud peaks at VAD_LEVEL), so a quiet recording and a loud one
    are judged alike. Beyond the track itself, memory is a few bytes per 32 ms chunk;
    `check_interrupt()` is called every minute of audio."""
    from . import vad

    samples = np.asarray(samples_16k, dtype=np.float32).reshape(-1)
    gain = min(VAD_LEVEL / max(_loud_peak(samples), 1e-12), 10 ** (VAD_MAX_GAIN_DB / 20))
    probability = vad.speech_probability(samples, check_interrupt, gain)
    speaking = _hysteresis(probability, SPEECH_PROBABILITY, END_PROBABILITY)
    level = _chunk_levels(samples, vad.CHUNK, speaking.size)
    chunk_s = vad.CHUNK / vad.SAMPLE_RATE
    runs = []
    for start, stop in _runs(speaking):
        loud = level[start:stop] >= np.percentile(level[start:stop], 90) - EDGE_RANGE_DB
        inside = np.flatnonzero(loud)
        start, stop = start + inside[0], start + inside[-1] + 1
        if runs and (start - runs[-1][1]) * chunk_s < MERGE_GAP_S:
            runs[-1][1] = stop
        else:
            runs.append([start, stop])
    kept = [(a * chunk_s, b * chunk_s) for a, b in runs if (b - a) * chunk_s >= MIN_SPEECH_S]
    return np.asarray(kept, dtype=np.float64).reshape(-1, 2)


def _hysteresis(probability: np.ndarray, start: float, stop: float) -> np.ndarray:
    """Speaking from a chunk at `start` or more, for as long as the chunks stay above `stop`."""
    above_stop = probability > stop
    speaking = np.zeros(probability.size, dtype=bool)
    for a, b in _runs(above_stop):  # each run above `stop` speaks from its first `start` on
        reached = np.flatnonzero(probability[a:b] >= start)
        if reached.size:
            speaking[a + reached[0]:b] = True
    return speaking


READ_BLOCK = 1 << 20  # samples read at a time where the whole track is measured (4 MB of float32)


def _loud_peak(samples: np.ndarray) -> float:
    """The LOUD_PERCENTILE magnitude, from a histogram built a block at a time (no copy of the
    track): exact to the bin, 1/4096 of full scale (12 bits)."""
    top = 0.0
    for s in range(0, samples.size, READ_BLOCK):
        top = max(top, float(np.abs(samples[s:s + READ_BLOCK]).max(initial=0.0)))
    edges = np.linspace(0.0, max(top, 1e-12), 4097)
    counts = np.zeros(4096, dtype=np.int64)
    for s in range(0, samples.size, READ_BLOCK):
        counts += np.histogram(np.abs(samples[s:s + READ_BLOCK]), bins=edges)[0]
    if counts.sum() == 0:
        return 0.0
    k = int(np.searchsorted(np.cumsum(counts), LOUD_PERCENTILE / 100 * counts.sum()))
    return float(edges[min(k + 1, 4096)])


def _chunk_levels(samples: np.ndarray, chunk: int, count: int) -> np.ndarray:
    """The level (dB) of each of `count` chunks of `chunk` samples, the last padded with silence."""
    level = np.empty(count, dtype=np.float64)
    step = READ_BLOCK - READ_BLOCK % chunk
    for s in range(0, count * chunk, step):
        piece = samples[s:s + step].astype(np.float64)
        n = -(-piece.size // chunk) if piece.size else 0
        padded = np.zeros(n * chunk)
        padded[:piece.size] = piece
        level[s // chunk:s // chunk + n] = 10 * np.log10(np.mean(padded.reshape(-1, chunk) ** 2, axis=1) + 1e-12)
    return level


def _runs(flags: np.ndarray):
    """(start, stop) of each run of True."""
    edges = np.flatnonzero(np.diff(np.concatenate(([0], flags.astype(np.int8), [0]))))
    return list(zip(edges[::2], edges[1::2]))


def speech_strength(runs: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Per output frame (whose mel windows start at `starts`), how much of the generated mouth
    to use: 1 where the middle of its audio window lies in speech (`speech_runs`), falling to 0
    over FADE_S into each pause, so no mouth pops and every pause of MIN_PAUSE_S or more shows
    the real mouth in its middle, at any frame rate."""
    starts = np.asarray(starts, dtype=np.int64)
    if starts.size == 0 or len(runs) == 0:
        return np.zeros(starts.size, dtype=np.float32)
    moment = (starts + MEL_WINDOW / 2) / MEL_FRAMES_PER_SECOND  # seconds
    last = len(runs) - 1
    k = np.searchsorted(runs[:, 0], moment, side="right") - 1  # the run starting at or before
    since = np.where(k >= 0, np.maximum(0.0, moment - runs[np.maximum(k, 0), 1]), np.inf)
    until = np.where(k < last, runs[np.minimum(k + 1, last), 0] - moment, np.inf)
    distance = np.minimum(since, until)
    return np.clip(1.0 - distance / FADE_S, 0.0, 1.0).astype(np.float32)


class AudioFeatures:
    """Everything the node needs from one AUDIO input: the mel, the frame count it drives,
    and per-frame windows on demand (so an hour of audio never materialises all windows)."""

    def __init__(self, audio, fps: float):
        self.fps = check_fps(fps)
        self.samples, self.sample_rate = read_audio(audio)
        self.num_samples = self.samples.shape[1]
        self.duration = self.num_samples / self.sample_rate  # seconds (the frames it drives: pipeline.timeline)
        self.samples_16k = to_model_rate(self.samples, self.sample_rate)
        self.mel = melspectrogram(self.samples_16k)
        self._speech = None  # speech_runs, found the first time they are asked for

    def windows(self, frame_indices: np.ndarray, sync_offset: float = 0.0,
                mel_step_multiplier: float = 1.0) -> np.ndarray:
        return mel_windows(self.mel, window_starts(frame_indices, self.fps, sync_offset,
                                                   mel_step_multiplier))

    def speech_strength(self, frame_positions: np.ndarray, sync_offset: float = 0.0,
                        mel_step_multiplier: float = 1.0, check_interrupt=None) -> np.ndarray:
        """Per output frame (in order), 1 where its audio holds speech, 0 in pauses, with fades
        between (see `speech_strength`). The first call finds the speech (`check_interrupt()`
        is called while it does)."""
        if self._speech is None:
            self._speech = speech_runs(self.samples_16k, check_interrupt)
        return speech_strength(self._speech, window_starts(frame_positions, self.fps, sync_offset,
                                                           mel_step_multiplier))

    def fitted_audio(self, n_frames: int) -> dict:
        return fit_audio(self.samples, self.sample_rate, n_frames, self.fps)


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
