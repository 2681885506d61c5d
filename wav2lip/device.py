"""Which device and precision the generator runs in, without assuming NVIDIA.

torch.cuda covers both CUDA and ROCm builds; MPS (Apple) and XPU (Intel) are used when present.
"""

from __future__ import annotations

import torch

from ..common.choices import PRECISIONS
from ..common.cpu import cpu_has_native_bf16


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


# each precision's dtype, by name ("auto" picks one of them per device)
_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
if set(_DTYPES) | {"auto"} != set(PRECISIONS):  # a choice added or renamed in choices.py
    raise ImportError(f"wav2lip.device maps {sorted(_DTYPES)} (and auto), the settings offer {PRECISIONS}")


def _nvidia_capability(device) -> tuple[int, int]:
    return tuple(torch.cuda.get_device_capability(device))


def native_dtypes(device: torch.device) -> set:
    """The reduced precisions `device` computes natively (fp32 always works)."""
    device = torch.device(device)
    if device.type == "cuda":
        if getattr(torch.version, "hip", None):  # ROCm: fp16 and bf16 on every supported GPU
            return {torch.float16, torch.bfloat16}
        major, _ = _nvidia_capability(device)
        return ({torch.float16} if major >= 7 else set()) | ({torch.bfloat16} if major >= 8 else set())
    if device.type == "xpu":  # Intel Arc / Data Center GPUs: XMX units do both
        return {torch.float16, torch.bfloat16}
    if device.type == "mps":  # Apple GPUs: fp16 natively; bf16 support depends on the macOS
        return {torch.float16}
    if device.type == "cpu":
        return {torch.bfloat16} if cpu_has_native_bf16() else set()
    return set()


def auto_dtype(device: torch.device) -> torch.dtype:
    """`auto`: fp16 only where it is both fast and numerically safe for this net, i.e. ROCm GPUs
    and NVIDIA GPUs from Volta (7.0) on; everything else (CPU, MPS, XPU, old NVIDIA) runs fp32."""
    device = torch.device(device)
    if device.type == "cuda" and torch.float16 in native_dtypes(device):
        return torch.float16
    return torch.float32


def pick_dtype(device: torch.device, precision: str, force_fp32: bool = False):
    """(dtype, note) for the generator: `precision` is one of PRECISIONS. A reduced precision
    the device does not compute natively falls back to fp32, and `note` says so (else None).
    `force_fp32` (ComfyUI's --force-fp32) makes `auto` fp32."""
    device = torch.device(device)
    if precision not in PRECISIONS:
        raise ValueError(f"precision '{precision}' is unknown; use one of {', '.join(PRECISIONS)}.")
    if precision == "auto":
        return (torch.float32 if force_fp32 else auto_dtype(device)), None
    wanted = _DTYPES[precision]
    if wanted == torch.float32 or wanted in native_dtypes(device):
        return wanted, None
    where = {"cpu": "this CPU (bf16 needs AVX-512 BF16 or AMX)" if precision == "bf16" else "a CPU",
             "cuda": "this GPU"}.get(device.type, f"this {device.type} device")
    return torch.float32, (f"{precision} is not computed natively on {where}; running the "
                           "generator in fp32 instead.")


# channels_last: measured faster for this generator on the CPU (the README's Performance section),
# and the native layout of GPU convolution kernels in half precision; so on every device
MEMORY_FORMAT = torch.channels_last


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
