"""The architecture fixture: a Wav2Lip state dict filled, key by key in the order of
tests/fixtures/wav2lip_state_dict.tsv, from one seeded generator (running_var 0.5 + |r|,
running_mean 0.1 r, conv weights r * sqrt(2 / fan_in), other weights 1 + 0.1 r, the rest 0.1 r).
Saved in the layouts real checkpoints come in."""

import math
from pathlib import Path

import torch


def fixture_state_dict(tsv_path) -> dict:
    g = torch.Generator().manual_seed(0)
    state = {}
    for line in Path(tsv_path).read_text().splitlines()[1:]:
        key, shape_text, _dtype = line.split("\t")
        if key.endswith("num_batches_tracked"):
            state[key] = torch.zeros((), dtype=torch.int64)
            continue
        shape = () if shape_text == "scalar" else tuple(int(v) for v in shape_text.split("x"))
        r = torch.randn(shape, generator=g)
        if key.endswith("running_var"):
            state[key] = 0.5 + r.abs()
        elif key.endswith("running_mean"):
            state[key] = 0.1 * r
        elif key.endswith(".weight") and len(shape) == 4:
            state[key] = r * math.sqrt(2.0 / (shape[1] * shape[2] * shape[3]))
        elif key.endswith(".weight"):
            state[key] = 1 + 0.1 * r
        else:
            state[key] = 0.1 * r
    return state


def save_released_layout(state: dict, path) -> Path:
    """As the Wav2Lip authors' files: DataParallel 'module.' keys, optimizer state alongside."""
    path = Path(path)
    optimizer = {"state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.zeros(4)}},
                 "param_groups": [{"lr": 1e-4, "betas": (0.5, 0.999), "params": [0]}]}
    torch.save({"state_dict": {"module." + k: v for k, v in state.items()},
                "optimizer": optimizer, "global_step": 123, "global_epoch": 4}, path)
    return path
