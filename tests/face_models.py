"""Face restoration models with random weights, built from the architectures spandrel reads
(GFPGAN 1.3/1.4's clean network, RestoreFormer; CodeFormer from spandrel_extra_arches) and read
back through spandrel's own loader, as core's Load Upscale Model reads a file."""

from __future__ import annotations

import functools

import torch


def _spandrel_loader():
    from spandrel import ModelLoader
    import spandrel_extra_arches

    spandrel_extra_arches.install(ignore_duplicates=True)  # as ComfyUI's loader does
    return ModelLoader()


def network(name: str, seed: int = 0):
    """A freshly made network of architecture `name` with random weights."""
    torch.manual_seed(seed)
    if name == "GFPGAN":
        from spandrel.architectures.GFPGAN import GFPGAN
        # GFPGANv1.3/1.4's own settings (GFPGANer's 'clean' arch)
        return GFPGAN(out_size=512, num_style_feat=512, channel_multiplier=2, decoder_load_path=None,
                      fix_decoder=False, num_mlp=8, input_is_latent=True, different_w=True, narrow=1,
                      sft_half=True)
    if name == "RestoreFormer":
        from spandrel.architectures.RestoreFormer import RestoreFormer
        return RestoreFormer()
    if name == "CodeFormer":
        from spandrel_extra_arches.architectures.CodeFormer import CodeFormer
        return CodeFormer()
    raise KeyError(name)


@functools.cache
def descriptor(name: str):
    """The spandrel descriptor of `network(name)`'s weights, read by spandrel (cached: they are
    large; tests put them back where they found them)."""
    return _spandrel_loader().load_from_state_dict(network(name).state_dict()).eval()
