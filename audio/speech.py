"""Where somebody speaks in the 16 kHz mono track (the voice activity detector, with hysteresis,
room tone trimmed at the edges), and how much mouth each output frame gets (fading into pauses):
the `silence` setting's measure."""

from __future__ import annotations

import numpy as np

from ..common.runs import runs_of
from .mel import MEL_FRAMES_PER_SECOND, MEL_WINDOW


# Silence, for keeping the real mouth where nobody speaks (the `silence` setting)
SPEECH_PROBABILITY = 0.5  # the voice activity detector's call: speech starts from this probability


END_PROBABILITY = 0.35  # ... and goes on down to this one (Silero's own advice: 0.15 lower)


EDGE_RANGE_DB = 30.0  # chunks at a speech stretch's edges this far under its level are room tone


MIN_SPEECH_S = 0.1  # shorter blips of "speech" (a click, a cough in the room tone) are not


MERGE_GAP_S = 0.15  # shorter gaps (between words) are speech


MIN_PAUSE_S = 0.3  # the promise (the `silence` tooltip, the tests measure it), not a parameter:
# a pause this long shows the real mouth, fully, in its middle (from 2 x FADE_S on, once the
# detector's edges are trimmed)


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
    for start, stop in runs_of(speaking):
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
    for a, b in runs_of(above_stop):  # each run above `stop` speaks from its first `start` on
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
