"""How each face restoration architecture is run, as its reference code runs it: the face in
RGB scaled to [-1, 1] (GFPGAN's and CodeFormer's own inference normalise by mean 0.5, std 0.5),
the arguments it is called with, what it returns, and the precisions it computes in. spandrel's
own call of these models feeds and clamps [0, 1] (the grey faces reported against core's Load
Upscale Model), so the model inside the descriptor is called directly."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch


@dataclass(frozen=True)
class FaceArchitecture:
    name: str
    forward: Callable  # (model, faces (n, 3, 512, 512) RGB in [-1, 1], fidelity) -> the same
    precisions: tuple  # the dtypes it computes in, besides fp32 (none refuses fp32)


def _gfpgan(model, faces, _fidelity):
    # the stored noise rather than fresh noise per call (the reference's default): the same face
    # gets the same skin texture in every frame instead of a shimmer from frame to frame
    return model(faces, return_rgb=False, randomize_noise=False)[0]


def _restoreformer(model, faces, _fidelity):
    return model(faces)[0]


def _codeformer(model, faces, fidelity):
    return model(faces, weight=float(fidelity))[0]  # `w` in CodeFormer's own inference


FACE_ARCHITECTURES = {a.name: a for a in (
    FaceArchitecture("GFPGAN", _gfpgan, (torch.bfloat16,)),
    FaceArchitecture("RestoreFormer", _restoreformer, (torch.bfloat16,)),
    # its codebook lookup multiplies in fp32 whatever the model's dtype: fp32 only
    FaceArchitecture("CodeFormer", _codeformer, ()),
)}
FACE_EXAMPLES = "GFPGAN 1.2-1.4, RestoreFormer, CodeFormer"
