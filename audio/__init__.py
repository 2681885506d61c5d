"""The sound a run is given, in plain NumPy/SciPy/torch: ComfyUI AUDIO read and mixed by channel
name (`track`), Wav2Lip's mel and its per-frame windows (`mel`), where somebody speaks (`speech`,
with the voice activity network in `vad`), and all of it for one input (`features`)."""

from .features import AudioFeatures
from .mel import (MEL_FRAMES_PER_SECOND, MEL_WINDOW, MODEL_SAMPLE_RATE, check_fps, mel_filter_bank,
                  mel_windows, melspectrogram, to_model_rate, window_starts)
from .speech import FADE_S, MIN_PAUSE_S, speech_runs, speech_strength
from .track import AudioInputError, channel_names, downmix, fit_audio, read_audio, stereo_mix

__all__ = ["FADE_S", "MEL_FRAMES_PER_SECOND", "MEL_WINDOW", "MIN_PAUSE_S", "MODEL_SAMPLE_RATE",
           "AudioFeatures", "AudioInputError", "channel_names", "check_fps", "downmix", "fit_audio",
           "mel_filter_bank", "mel_windows", "melspectrogram", "read_audio", "speech_runs",
           "speech_strength", "stereo_mix", "to_model_rate", "window_starts"]
