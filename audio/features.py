"""Everything a run needs from one AUDIO input: its samples, the mel, the frame count it drives,
per-frame mel windows and speech strengths on demand (an hour of audio never materialises all
windows)."""

from __future__ import annotations

import numpy as np

from .mel import check_fps, mel_windows, melspectrogram, to_model_rate, window_starts
from .speech import speech_runs, speech_strength
from .track import fit_audio, read_audio


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
