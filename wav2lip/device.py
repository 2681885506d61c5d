"""Which device and precision the generator runs in, without assuming NVIDIA.

torch.cuda covers both CUDA and ROCm builds; MPS (Apple) and XPU (Intel) are used when present.
"""

from __future__ import annotations

import torch


def pick_device(force_cpu: bool = False) -> torch.device:
    if force_cpu:
        return torch.device("cpu")
    if torch.cuda.is_available():  # NVIDIA CUDA and AMD ROCm alike
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    xpu = getattr(torch, "xpu", None)
    if xpu is not None and xpu.is_available():
        return torch.device("xpu")
    return torch.device("cpu")


def pick_dtype(device: torch.device) -> torch.dtype:
    """fp16 only where it is both fast and numerically safe for this net: ROCm GPUs and NVIDIA
    GPUs from Volta (7.0) on; everything else (CPU, MPS, XPU, old NVIDIA) runs fp32."""
    device = torch.device(device)
    if device.type != "cuda":
        return torch.float32
    if getattr(torch.version, "hip", None):
        return torch.float16
    major, _ = torch.cuda.get_device_capability(device)
    return torch.float16 if major >= 7 else torch.float32


def pick_memory_format(device: torch.device) -> torch.memory_format:
    """channels_last measured faster for this generator on CPU (see the README's Performance
    section) and is the native layout of GPU convolution kernels in half precision."""
    return torch.channels_last


def is_out_of_memory(err: BaseException) -> bool:
    oom_type = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", None)
    if oom_type is not None and isinstance(err, oom_type):
        return True
    return isinstance(err, RuntimeError) and "out of memory" in str(err).lower()


def empty_cache(device: torch.device):
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.empty_cache()
    elif device.type == "mps" and hasattr(torch, "mps"):
        torch.mps.empty_cache()
    elif device.type == "xpu" and hasattr(torch, "xpu"):
        torch.xpu.empty_cache()
