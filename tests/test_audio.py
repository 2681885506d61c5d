import logging
import math
from collections.abc import Mapping
from fractions import Fraction

import numpy as np
import pytest
import torch

from conftest import pack_module, read_wav_int16

audio = pack_module("audio")
pipeline = pack_module("routes")


def frames_for_audio(num_samples, sample_rate, fps):
    """How many output frames audio of this length drives (the timeline decides, for both
    routes): one input frame looped to the audio's end."""
    return len(pipeline.timeline("repetitive", [0.0], num_samples / sample_rate, fps))


def driven(features):
    return frames_for_audio(features.num_samples, features.sample_rate, features.fps)


def tone(freq, rate, seconds, amp=0.5):
    t = np.arange(int(rate * seconds)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def as_audio(samples, rate):
    wave = torch.as_tensor(np.asarray(samples))
    while wave.ndim < 3:
        wave = wave[None]
    return {"waveform": wave, "sample_rate": rate}


@pytest.fixture(scope="module")
def speech(fixtures_dir):
    pcm, rate = read_wav_int16(fixtures_dir / "speech16k.wav")
    assert rate == 16000
    return pcm


# ------------------------------------------------------------------ mel parity and reading


def test_mel_matches_the_reference_fixture(fixtures_dir, speech):
    mel = audio.melspectrogram(speech[0].astype(np.float32) / 32768)
    reference = np.load(fixtures_dir / "speech16k_mel.npy")
    assert mel.dtype == np.float32 and mel.shape == reference.shape == (80, 241)
    np.testing.assert_allclose(mel, reference, atol=1e-4, rtol=0)


def test_features_of_the_fixture_through_the_audio_input_match(fixtures_dir, speech):
    features = audio.AudioFeatures(as_audio(speech, 16000), fps=25)
    np.testing.assert_allclose(features.mel, np.load(fixtures_dir / "speech16k_mel.npy"), atol=1e-4)


def test_int16_and_float_inputs_give_the_same_mel(speech):
    from_int = audio.AudioFeatures(as_audio(speech, 16000), fps=25).mel
    from_float = audio.AudioFeatures(as_audio(speech.astype(np.float64) / 32768, 16000), fps=25).mel
    half = audio.AudioFeatures(as_audio(torch.from_numpy(speech / 32768).half(), 16000), fps=25).mel
    np.testing.assert_allclose(from_int, from_float, atol=1e-5)
    assert np.abs(half - from_float).mean() < 0.01  # fp16 input is accepted and cast safely


def test_stereo_is_averaged_to_mono(speech):
    x = speech[0].astype(np.float32) / 32768
    stereo = np.stack([x, 0.5 * x])
    mono = audio.AudioFeatures(as_audio(0.75 * x, 16000), fps=25).mel
    np.testing.assert_allclose(audio.AudioFeatures(as_audio(stereo, 16000), fps=25).mel, mono, atol=1e-4)


@pytest.mark.parametrize("rate", [44100, 48000, 22050, 8000])
def test_resampled_tone_peaks_in_the_band_of_1khz(rate):
    reference = audio.melspectrogram(tone(1000, 16000, 1.0))
    features = audio.AudioFeatures(as_audio(np.stack([tone(1000, rate, 1.0)] * 2), rate), fps=25)
    assert features.mel.shape == reference.shape
    band = int(np.argmax(reference[:, 40]))
    bank = audio.mel_filter_bank()
    band_peak_hz = np.argmax(bank[band]) * 16000 / 800
    assert abs(band_peak_hz - 1000) <= 40
    assert all(int(np.argmax(features.mel[:, t])) == band for t in range(5, 75))
    # band-limited: where the tone has energy the resampled spectrum matches the native one,
    # with no level loss or aliased images
    loud = reference[:, 5:-5] > -1
    assert np.abs(features.mel[:, 5:-5] - reference[:, 5:-5])[loud].max() < 0.01


def test_a_lazy_mapping_is_accepted(speech):
    class Lazy(Mapping):
        def __getitem__(self, key):
            return {"waveform": torch.from_numpy(speech[None] / 32768), "sample_rate": 16000}[key]

        def __iter__(self):
            return iter(("waveform", "sample_rate"))

        def __len__(self):
            return 2

    assert audio.AudioFeatures(Lazy(), fps=25).mel.shape == (80, 241)


def test_waveform_layouts_and_batches(speech, caplog):
    x = speech[0].astype(np.float32) / 32768
    one_d = audio.AudioFeatures({"waveform": torch.from_numpy(x), "sample_rate": 16000}, 25).mel
    two_d = audio.AudioFeatures({"waveform": torch.from_numpy(x[None]), "sample_rate": 16000}, 25).mel
    batch = torch.from_numpy(np.stack([x, np.zeros_like(x)])[:, None])
    with caplog.at_level(logging.INFO, logger="HaloLipsy"):
        first = audio.AudioFeatures({"waveform": batch, "sample_rate": 16000}, 25).mel
    np.testing.assert_array_equal(one_d, two_d)
    np.testing.assert_array_equal(one_d, first)
    assert "first" in caplog.text


# ------------------------------------------------------------------ frame counts and windows


@pytest.mark.parametrize("fps", [24, 25, 29.97, 30, 60, 12, 23.976, 50])
def test_frame_count_and_window_positions_follow_the_formula(speech, fps):
    features = audio.AudioFeatures(as_audio(speech, 16000), fps=fps)
    n_samples = speech.shape[1]
    expected = math.ceil(Fraction(n_samples) * Fraction(str(fps)) / 16000)
    assert frames_for_audio(n_samples, 16000, features.fps) == expected
    mel = features.mel
    windows = features.windows(np.arange(expected))
    assert windows.shape == (expected, 80, 16)
    for i in range(expected):
        start = int((i * 1.0 - 0) * 80 / fps)
        want = np.full((80, 16), -4.0, np.float32)
        cols = mel[:, start:start + 16]
        want[:, :cols.shape[1]] = cols
        np.testing.assert_array_equal(windows[i], want)


def test_no_tail_frames_are_dropped():
    # 4.4 s at 25 fps is 110 frames, not 111; 4.41 s needs a 111th
    assert frames_for_audio(70400, 16000, 25.0) == 110
    assert frames_for_audio(4.4 * 44100, 44100, 25.0) == 110
    assert frames_for_audio(70560, 16000, 25.0) == 111
    assert frames_for_audio(48000, 48000, 29.97) == 30


@pytest.mark.parametrize("k", [1, 2, 5, -1, -3])
def test_sync_offset_shifts_windows_by_whole_frames(speech, k):
    features = audio.AudioFeatures(as_audio(speech, 16000), fps=25)
    frames = np.arange(10, 60)
    np.testing.assert_array_equal(features.windows(frames, sync_offset=k), features.windows(frames - k))


def test_mel_step_multiplier_scales_the_step():
    # a burst of tone at 2.0-2.1 s in silence: at 25 fps frame 50 looks at it; with the audio
    # advancing twice as fast per frame, frame 25 does, and with half as fast, frame 100
    rate, fps = 16000, 25
    samples = np.zeros(4 * rate, np.float32)
    samples[2 * rate:int(2.1 * rate)] = tone(700, rate, 0.1)
    features = audio.AudioFeatures(as_audio(samples, rate), fps=fps)

    def loudest_frame(multiplier, frames):
        windows = features.windows(frames, mel_step_multiplier=multiplier)
        return int(frames[int(np.argmax(windows[:, :, :8].mean(axis=(1, 2))))])

    # +-1: a window's start is truncated to a whole mel column, and the burst spans 8 of them
    assert abs(loudest_frame(1.0, np.arange(100)) - 50) <= 1
    assert abs(loudest_frame(2.0, np.arange(50)) - 25) <= 1
    assert abs(loudest_frame(0.5, np.arange(200)) - 100) <= 1


def test_silence_pads_windows_at_both_ends(speech):
    features = audio.AudioFeatures(as_audio(speech, 16000), fps=25)
    early = features.windows([0], sync_offset=2)[0]  # starts 6 columns before the audio
    np.testing.assert_array_equal(early[:, :6], -4.0)
    np.testing.assert_array_equal(early[:, 6:], features.mel[:, :10])
    last = features.windows([driven(features) - 1])[0]
    start = int((driven(features) - 1) * 80 / 25)
    inside = features.mel.shape[1] - start
    np.testing.assert_array_equal(last[:, :inside], features.mel[:, start:])
    np.testing.assert_array_equal(last[:, inside:], -4.0)
    beyond = features.windows([driven(features) + 100])[0]
    np.testing.assert_array_equal(beyond, -4.0)


# ------------------------------------------------------------------ valid edge cases


def test_silent_audio_gives_a_closed_mouth_mel():
    features = audio.AudioFeatures(as_audio(np.zeros((2, 48000), np.float32), 48000), fps=25)
    assert driven(features) == 25
    np.testing.assert_array_equal(features.mel, -4.0)


def test_audio_shorter_than_one_window():
    features = audio.AudioFeatures(as_audio(tone(300, 16000, 0.1), 16000), fps=25)
    assert driven(features) == 3 and features.mel.shape == (80, 9)
    windows = features.windows(np.arange(3))
    assert windows.shape == (3, 80, 16)
    np.testing.assert_array_equal(windows[0, :, 9:], -4.0)


def test_a_single_sample_of_padding_adds_a_frame():
    assert driven(audio.AudioFeatures(as_audio(tone(300, 16000, 1.0), 16000), fps=25)) == 25
    samples = np.concatenate([tone(300, 16000, 1.0), np.zeros(1, np.float32)])
    assert driven(audio.AudioFeatures(as_audio(samples, 16000), fps=25)) == 26


def test_a_single_sample_is_valid():
    features = audio.AudioFeatures(as_audio(np.array([0.1], np.float32), 16000), fps=25)
    assert driven(features) == 1 and features.mel.shape == (80, 1)


# ------------------------------------------------------------------ output audio


@pytest.mark.parametrize("n_frames", [10, 25, 40])
def test_fitted_audio_keeps_rate_and_channels_and_has_the_exact_length(n_frames):
    x = np.stack([tone(440, 44100, 1.0), tone(220, 44100, 1.0)])
    features = audio.AudioFeatures(as_audio(x, 44100), fps=25)
    out = features.fitted_audio(n_frames)
    assert out["sample_rate"] == 44100
    wave = out["waveform"]
    assert wave.dtype == torch.float32 and wave.shape == (1, 2, n_frames * 44100 // 25)
    keep = min(44100, wave.shape[2])
    np.testing.assert_array_equal(wave[0, :, :keep].numpy(), x[:, :keep])
    assert torch.all(wave[0, :, keep:] == 0)


def test_fitted_audio_from_int16_is_float():
    pcm = (np.sin(np.arange(16000) / 5) * 20000).astype(np.int16)
    out = audio.AudioFeatures(as_audio(pcm, 16000), fps=25).fitted_audio(25)
    assert out["waveform"].dtype == torch.float32
    assert float(out["waveform"].abs().max()) == pytest.approx(20000 / 32768, abs=1e-3)


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize("value, words", [
    (None, "No audio: connect an AUDIO"),
    ({"sample_rate": 16000}, "no 'waveform'"),
    ({"waveform": torch.zeros(1, 1, 100)}, "no 'sample_rate'"),
    ({"waveform": torch.zeros(1, 1, 0), "sample_rate": 16000}, "empty (0 samples)"),
    ({"waveform": torch.zeros(0, 1, 10), "sample_rate": 16000}, "empty (0 samples)"),
    ({"waveform": torch.zeros(1, 1, 100), "sample_rate": 0}, "positive whole number"),
    ({"waveform": torch.zeros(1, 1, 100), "sample_rate": -16000}, "positive whole number"),
    ({"waveform": torch.zeros(1, 1, 100), "sample_rate": 44100.5}, "positive whole number"),
    ({"waveform": torch.zeros(1, 1, 100), "sample_rate": "48k"}, "positive whole number"),
    ({"waveform": torch.zeros(2, 2, 2, 100), "sample_rate": 16000}, "expected [batch, channels"),
    ("speech.wav", "not ComfyUI AUDIO"),
])
def test_bad_audio_gets_a_clear_message(value, words):
    with pytest.raises(audio.AudioInputError) as err:
        audio.AudioFeatures(value, fps=25)
    assert words in str(err.value)


def test_nan_and_inf_samples_are_counted():
    wave = torch.zeros(1, 2, 1000)
    wave[0, 0, :3] = float("nan")
    wave[0, 1, 7] = float("inf")
    with pytest.raises(audio.AudioInputError, match="4 NaN or infinite samples out of 2000"):
        audio.AudioFeatures({"waveform": wave, "sample_rate": 16000}, fps=25)


@pytest.mark.parametrize("fps", [0, -25, float("nan"), float("inf"), None])
def test_bad_fps_gets_a_clear_message(fps):
    with pytest.raises(audio.AudioInputError, match="fps is .* positive frame rate"):
        audio.AudioFeatures(as_audio(np.zeros(1600, np.float32), 16000), fps=fps)


def test_a_float_rate_with_a_whole_value_is_accepted():
    features = audio.AudioFeatures({"waveform": torch.zeros(1, 1, 44100), "sample_rate": 44100.0}, fps=25)
    assert features.sample_rate == 44100 and driven(features) == 25
