"""Voice activity: where in a 16 kHz mono track somebody speaks.

Silence for dubbing means "nobody speaks", not "quiet": room tone, hiss, a fan, breaths and music
without a voice can be as loud as speech, and a stem may speak one line in a minute, so loudness
alone cannot tell. This runs Silero VAD (MIT), a small network trained for the job: it calls
room tone, hiss and a harmonic chord non-speech, and judges quiet and loud recordings of the same
speech alike. Its weights come from the `silero-vad` wheel (installed with the pack); the
network is written here in plain torch from its layout, so the convolutional front end
runs on every 32 ms chunk of the track at once and only the small LSTM steps through time, and
importing nothing of that package leaves torch's global settings (its import sets one thread)
alone. About 0.6 s for a minute of audio on a 2-core AMD EPYC, loading included (0.8 s on the
2-core Xeon with the blocks and the loudness read a block at a time).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..common.errors import HaloLipsyError

SAMPLE_RATE = 16000
CHUNK = 512  # samples the network judges at once (32 ms)
CONTEXT = 64  # samples of the previous chunk each chunk is judged with
CHUNKS_PER_SECOND = SAMPLE_RATE / CHUNK  # 31.25
BLOCK = 1875  # chunks judged at once (a minute): ~25 MB of intermediate features
WEIGHTS = "silero_vad.jit"  # the package's default model; its 16 kHz half holds our weights
# names in that file -> ours
_NAMES = {"stft.forward_basis_buffer": "stft_conv.weight", "decoder.rnn.": "lstm_cell.",
          "decoder.decoder.2.": "final_conv.", **{f"encoder.{k}.reparam_conv.": f"conv{k + 1}."
                                                  for k in range(4)}}


class VadError(HaloLipsyError):
    """The voice activity detector cannot run; the message says what to install."""


class SileroVad(nn.Module):
    """Silero VAD v5/v6 at 16 kHz: a learnt STFT (256-point, hop 128), four 1-D convolutions,
    one LSTM cell carried from chunk to chunk, and a 1x1 convolution to a speech probability."""

    def __init__(self):
        super().__init__()
        self.stft_conv = nn.Conv1d(1, 258, kernel_size=256, stride=128, bias=False)
        self.conv1 = nn.Conv1d(129, 128, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(128, 64, kernel_size=3, stride=2, padding=1)
        self.conv3 = nn.Conv1d(64, 64, kernel_size=3, stride=2, padding=1)
        self.conv4 = nn.Conv1d(64, 128, kernel_size=3, padding=1)
        self.lstm_cell = nn.LSTMCell(128, 128)
        self.final_conv = nn.Conv1d(128, 1, kernel_size=1)

    def encode(self, chunks: torch.Tensor) -> torch.Tensor:
        """(n, CONTEXT + CHUNK) samples -> (n, 128) features, every chunk at once."""
        x = nn.functional.pad(chunks, (0, 64), mode="reflect")[:, None]
        x = self.stft_conv(x)
        x = torch.sqrt(x[:, :129] ** 2 + x[:, 129:] ** 2)
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4):
            x = torch.relu(conv(x))
        return x[:, :, 0]

    @torch.inference_mode()
    def forward(self, samples: torch.Tensor, check_interrupt=None, gain: float = 1.0) -> torch.Tensor:
        """Mono 16 kHz samples (T,) -> speech probability per 512-sample chunk (ceil(T / 512),).
        The track is judged BLOCK chunks at a time, the LSTM's state carried across, so memory
        does not grow with its length (4 bytes a chunk for the answer); `check_interrupt()` is
        called before each block. The samples are heard multiplied by `gain`."""
        n = max(1, -(-samples.numel() // CHUNK))
        out = torch.empty(n, dtype=torch.float32)
        state = (torch.zeros(1, 128), torch.zeros(1, 128))
        for first in range(0, n, BLOCK):
            if check_interrupt is not None:
                check_interrupt()
            count = min(BLOCK, n - first)
            padded = torch.zeros(CONTEXT + count * CHUNK, dtype=torch.float32)
            lo = first * CHUNK - CONTEXT  # each chunk is judged with the 64 samples before it
            piece = samples[max(0, lo):first * CHUNK + count * CHUNK]
            padded[max(0, -lo):max(0, -lo) + piece.numel()] = piece * gain
            chunks = padded.unfold(0, CONTEXT + CHUNK, CHUNK)
            features = self.encode(chunks)
            states = torch.empty(count, 128)
            for k in range(count):  # the LSTM is the only step that must go in order
                state = self.lstm_cell(features[k:k + 1], state)
                states[k] = state[0][0]
            out[first:first + count] = torch.sigmoid(self.final_conv(torch.relu(states)[:, :, None]))[:, 0, 0]
        return out


def weights_path() -> Path:
    """The 16 kHz weights inside the installed silero-vad wheel (found without importing it)."""
    spec = importlib.util.find_spec("silero_vad")
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        path = Path(folder) / "data" / WEIGHTS
        if path.is_file():
            return path
    raise VadError("silence 'keep_original' needs the voice activity detector of the silero-vad "
                   "package, which is not installed: run `python -m pip install -r "
                   "requirements.txt` in ComfyUI's Python environment, then restart.")


def load_vad() -> SileroVad:
    """The network with the wheel's weights. Only the tensors are taken from its TorchScript
    archive (loading one runs no Python); its 16 kHz model is ours, layer for layer."""
    import warnings

    with warnings.catch_warnings():  # torch 2.10+ calls jit.load deprecated; it still reads
        warnings.simplefilter("ignore", DeprecationWarning)
        archive = torch.jit.load(str(weights_path()), map_location="cpu")
    state = {}
    for name, tensor in archive._model.state_dict().items():
        for theirs, ours in _NAMES.items():
            if name.startswith(theirs):
                state[ours + name[len(theirs):]] = tensor.detach().clone()
    model = SileroVad()
    model.load_state_dict(state)
    return model.eval()


def speech_probability(samples_16k: np.ndarray, check_interrupt=None, gain: float = 1.0) -> np.ndarray:
    """Per 32 ms chunk of mono 16 kHz audio (heard multiplied by `gain`), the probability that
    somebody speaks in it; `check_interrupt()` is called every minute of audio."""
    samples = torch.from_numpy(np.ascontiguousarray(samples_16k, dtype=np.float32).reshape(-1))
    return load_vad()(samples, check_interrupt, gain).numpy()
