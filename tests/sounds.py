"""Sounds users bring, built from the fixture's real speech: speech with pauses over room tone,
a stem that speaks one line in a long stretch of room tone, music without a voice; and the
voice's other sounds: a whispered line and a laugh (eSpeak NG recordings, tests/fixtures), and
stand-ins for a cough and a door slam (shaped noise; what a detector hears of them is their
spectrum and envelope, which these copy)."""

from __future__ import annotations

import numpy as np
from scipy.signal import butter, lfilter

from conftest import FIXTURES, read_wav_int16

RATE = 16000


def speech() -> np.ndarray:
    """The fixture recording: 3 s of real speech, 16 kHz mono float32."""
    samples, rate = read_wav_int16(FIXTURES / "speech16k.wav")
    assert rate == RATE
    return samples[0].astype(np.float32) / 32768.0


def room_tone(seconds: float, db_under_peak: float, peak: float, seed=0) -> np.ndarray:
    """A quiet room: rumbling low-passed noise, mains hum and microphone hiss, its RMS
    `db_under_peak` dB under `peak`."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * RATE))
    t = np.arange(n) / RATE
    rumble = lfilter([1.0], [1.0, -0.97], rng.standard_normal(n))
    rumble /= np.sqrt(np.mean(rumble ** 2))
    hiss = rng.standard_normal(n)
    hum = np.sqrt(2) * (np.sin(2 * np.pi * 50 * t) + 0.5 * np.sin(2 * np.pi * 150 * t))
    tone = 0.7 * rumble + 0.5 * hiss + 0.3 * hum
    tone *= peak * 10 ** (db_under_peak / 20) / np.sqrt(np.mean(tone ** 2))
    return tone.astype(np.float32)


def over_room_tone(samples: np.ndarray, db_under_peak: float, seed=0) -> np.ndarray:
    peak = float(np.abs(samples).max())
    return samples + room_tone(samples.size / RATE, db_under_peak, peak, seed)


def with_pause(samples: np.ndarray, at: float, pause: float) -> np.ndarray:
    """`samples` with `pause` seconds of nothing inserted at `at` seconds (mid-word: the hardest
    place for a detector to find the pause's edge)."""
    cut = int(round(at * RATE))
    return np.concatenate([samples[:cut], np.zeros(int(round(pause * RATE)), np.float32), samples[cut:]])


def placed(samples: np.ndarray, seconds: float, at: float) -> np.ndarray:
    """`samples` placed `at` seconds into `seconds` of nothing."""
    out = np.zeros(int(round(seconds * RATE)), np.float32)
    start = int(round(at * RATE))
    out[start:start + samples.size] = samples[:out.size - start]
    return out


def music(seconds: float, seed=0) -> np.ndarray:
    """Instrumental music without a voice: a chord progression of rich harmonic tones with
    plucked envelopes over a bass line and a hi-hat, at speech-like loudness."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * RATE))) / RATE
    out = np.zeros_like(t)
    chords = [(220.0, 277.2, 329.6), (196.0, 246.9, 293.7), (174.6, 220.0, 261.6), (196.0, 246.9, 311.1)]
    beat = 0.5
    for k, start in enumerate(np.arange(0, seconds, beat)):
        chord = chords[(k // 4) % len(chords)]
        seg = (t >= start) & (t < start + beat)
        local = t[seg] - start
        env = np.exp(-3.0 * local)
        for f in chord:
            for h in range(1, 6):
                out[seg] += env * np.sin(2 * np.pi * f * h * local) / h
        out[seg] += 1.5 * env * np.sin(2 * np.pi * chord[0] / 2 * local)
        hat = (local < 0.03)
        out[np.flatnonzero(seg)[hat]] += 0.3 * rng.standard_normal(int(hat.sum()))
    return (0.5 * out / np.abs(out).max()).astype(np.float32)


def whisper() -> np.ndarray:
    """A whispered line, 3.9 s (eSpeak NG's whisper voice)."""
    samples, rate = read_wav_int16(FIXTURES / "whisper16k.wav")
    assert rate == RATE
    return samples[0].astype(np.float32) / 32768.0


def laugh() -> np.ndarray:
    """A laugh, "ha ha ha ha, ha ha", 1.9 s (eSpeak NG)."""
    samples, rate = read_wav_int16(FIXTURES / "laugh16k.wav")
    assert rate == RATE
    return samples[0].astype(np.float32) / 32768.0


def cough(seed=0) -> np.ndarray:
    """A cough, 0.35 s: two bursts of breath noise in the voice's band (300-3000 Hz), the first
    sharp, the second softer, at speech-like loudness."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(0.35 * RATE)) / RATE
    b, a = butter(2, [300 / (RATE / 2), 3000 / (RATE / 2)], "band")
    burst = lfilter(b, a, rng.standard_normal(t.size))
    envelope = np.exp(-t / 0.06) * (t < 0.18) + 0.6 * np.exp(-(t - 0.2) / 0.05) * (t >= 0.2)
    out = burst * envelope
    return (0.5 * out / np.abs(out).max()).astype(np.float32)


def door_slam(seed=0) -> np.ndarray:
    """A door slamming, 0.6 s: a near-full-scale low thump (under 400 Hz) with a 70 Hz boom,
    decaying in a tenth of a second."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(0.6 * RATE)) / RATE
    b, a = butter(2, 400 / (RATE / 2))
    out = lfilter(b, a, rng.standard_normal(t.size)) * np.exp(-t / 0.08)
    out += np.sin(2 * np.pi * 70 * t) * np.exp(-t / 0.15)
    return (0.95 * out / np.abs(out).max()).astype(np.float32)
