"""The Wav2Lip generator, written here from the published architecture.

Parameter names and shapes are exactly those of the released checkpoints (see
tests/fixtures/wav2lip_state_dict.tsv), so their state dicts load without renaming.
"""

from __future__ import annotations

import torch
from torch import nn


class ConvBlock(nn.Module):
    """Conv + BatchNorm + ReLU, optionally with an identity shortcut (same shape in and out)."""

    def __init__(self, cin, cout, kernel, stride, padding, residual=False, transpose=False,
                 output_padding=0):
        super().__init__()
        if transpose:
            conv = nn.ConvTranspose2d(cin, cout, kernel, stride, padding, output_padding)
        else:
            conv = nn.Conv2d(cin, cout, kernel, stride, padding)
        self.conv_block = nn.Sequential(conv, nn.BatchNorm2d(cout))
        self.act = nn.ReLU()
        self.residual = residual
        self.fused = False  # set by fuse(): BatchNorm folded into the conv

    def forward(self, x):
        out = self.conv_block(x)
        if self.fused:  # inference only: the conv output is ours to modify in place
            if self.residual:
                out += x
            return torch.relu_(out)
        if self.residual:
            out = out + x
        return self.act(out)

    @torch.no_grad()
    def fuse(self):
        """Fold the (eval-mode) BatchNorm into the convolution: one op instead of three per
        block, and no extra activation buffers. Same function up to float rounding."""
        if self.fused:
            return
        conv, bn = self.conv_block[0], self.conv_block[1]
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        # Conv2d weights are (out, in, kh, kw); ConvTranspose2d weights are (in, out, kh, kw)
        shape = (1, -1, 1, 1) if isinstance(conv, nn.ConvTranspose2d) else (-1, 1, 1, 1)
        conv.weight.mul_(scale.reshape(shape))
        bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
        conv.bias = nn.Parameter((bias - bn.running_mean) * scale + bn.bias, requires_grad=False)
        self.conv_block = nn.Sequential(conv)
        self.fused = True


def _res(channels):
    return ConvBlock(channels, channels, 3, 1, 1, residual=True)


def _up(cin, cout, stride=2, padding=1, output_padding=1):
    return ConvBlock(cin, cout, 3, stride, padding, transpose=True, output_padding=output_padding)


class Wav2Lip(nn.Module):
    """forward(mel_batch (B, 1, 80, 16), face_batch (B, 6, 96, 96)) -> (B, 3, 96, 96) in [0, 1].

    Faces: channels 0-2 the BGR crop with its lower half zeroed, 3-5 the unmasked BGR crop.
    """

    def __init__(self):
        super().__init__()
        self.face_encoder_blocks = nn.ModuleList([
            nn.Sequential(ConvBlock(6, 16, 7, 1, 3)),                                         # 96
            nn.Sequential(ConvBlock(16, 32, 3, 2, 1), _res(32), _res(32)),                    # 48
            nn.Sequential(ConvBlock(32, 64, 3, 2, 1), _res(64), _res(64), _res(64)),          # 24
            nn.Sequential(ConvBlock(64, 128, 3, 2, 1), _res(128), _res(128)),                 # 12
            nn.Sequential(ConvBlock(128, 256, 3, 2, 1), _res(256), _res(256)),                # 6
            nn.Sequential(ConvBlock(256, 512, 3, 2, 1), _res(512)),                           # 3
            nn.Sequential(ConvBlock(512, 512, 3, 1, 0), ConvBlock(512, 512, 1, 1, 0)),        # 1
        ])
        self.audio_encoder = nn.Sequential(
            ConvBlock(1, 32, 3, 1, 1), _res(32), _res(32),
            ConvBlock(32, 64, 3, (3, 1), 1), _res(64), _res(64),
            ConvBlock(64, 128, 3, 3, 1), _res(128), _res(128),
            ConvBlock(128, 256, 3, (3, 2), 1), _res(256),
            ConvBlock(256, 512, 3, 1, 0), ConvBlock(512, 512, 1, 1, 0),
        )
        self.face_decoder_blocks = nn.ModuleList([
            nn.Sequential(ConvBlock(512, 512, 1, 1, 0)),                                      # 1
            nn.Sequential(_up(1024, 512, stride=1, padding=0, output_padding=0), _res(512)),  # 3
            nn.Sequential(_up(1024, 512), _res(512), _res(512)),                              # 6
            nn.Sequential(_up(768, 384), _res(384), _res(384)),                               # 12
            nn.Sequential(_up(512, 256), _res(256), _res(256)),                               # 24
            nn.Sequential(_up(320, 128), _res(128), _res(128)),                               # 48
            nn.Sequential(_up(160, 64), _res(64), _res(64)),                                  # 96
        ])
        self.output_block = nn.Sequential(
            ConvBlock(80, 32, 3, 1, 1), nn.Conv2d(32, 3, 1, 1, 0), nn.Sigmoid())

    def fuse_for_inference(self) -> "Wav2Lip":
        """Fold every BatchNorm into its convolution (eval only; the state dict then no longer
        has the released layout). Returns self."""
        self.eval()
        for module in self.modules():
            if isinstance(module, ConvBlock):
                module.fuse()
        return self

    def forward(self, mel_batch: torch.Tensor, face_batch: torch.Tensor) -> torch.Tensor:
        x = self.audio_encoder(mel_batch)  # (B, 512, 1, 1)
        skips = []
        feats = face_batch
        for block in self.face_encoder_blocks:
            feats = block(feats)
            skips.append(feats)
        for block in self.face_decoder_blocks:
            x = torch.cat((block(x), skips.pop()), dim=1)
        return self.output_block(x)
