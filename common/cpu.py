"""What this CPU computes natively, for the networks that run on it (the generator when no GPU
is used, the face detector always)."""

from __future__ import annotations

import torch


def cpu_has_native_bf16() -> bool:
    """AVX-512 BF16 (AMD Zen 4+, Intel Cooper Lake) or AMX (Intel Sapphire Rapids+): bf16
    matrix maths in hardware. Elsewhere torch emulates it, slower than fp32."""
    caps = getattr(getattr(torch._C, "_cpu", None), "_get_cpu_capability", None)
    try:
        found = caps() if caps is not None else {}
    except Exception:  # noqa: BLE001 - an unknown CPU: assume no native bf16
        found = {}
    return bool(found.get("avx512_bf16") or found.get("amx_bf16"))
