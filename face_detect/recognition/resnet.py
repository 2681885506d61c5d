"""dlib's face recognition ResNet (dlib_face_recognition_resnet_model_v1.dat, CC0), in torch.

The network dlib's `dnn_face_recognition_ex` describes: a 7x7/2 convolution and a 3x3/2 max pool
over a 150x150 aligned RGB face, then 29 residual blocks' worth of 3x3 convolutions in five
levels (32, 64, 128, 256, 256 filters; each level after the first starts with a block of stride
2 whose shortcut is a 2x2 average pool), an average over what is left, and 128 outputs without
bias. Every batch norm was folded into a per-channel affine layer before release.

dlib's conventions kept here: a strided convolution or pool has no padding (a 3x3 stride-1
convolution pads 1); a shortcut with fewer channels or rows than the block's output is added as
if padded with zeros (dlib's add_prev takes the larger of each size); the input is each channel
minus the training set's mean (122.782, 117.001, 104.298), over 256.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .dlib_file import DlibFormatError, DlibReader

CHIP_SIZE = 150
MEAN_RGB = (122.782, 117.001, 104.298)
# filters and blocks per level, input side first; True: the level starts with a stride-2 block
LEVELS = ((32, 3, False), (64, 4, True), (128, 3, True), (256, 3, True), (256, 1, True))
EMBEDDING_SIZE = 128


def _add_padded(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a + b where the smaller is taken as zero-padded (channels, rows, columns at the end)."""
    if a.shape == b.shape:
        return a + b
    shape = [max(x, y) for x, y in zip(a.shape, b.shape)]
    out = a.new_zeros(shape)
    out[:, :a.shape[1], :a.shape[2], :a.shape[3]] += a
    out[:, :b.shape[1], :b.shape[2], :b.shape[3]] += b
    return out


class Affine(torch.nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(channels))
        self.bias = torch.nn.Parameter(torch.zeros(channels))

    def forward(self, x):
        return x * self.weight[:, None, None] + self.bias[:, None, None]


def _conv(cin: int, cout: int, size: int, stride: int) -> torch.nn.Conv2d:
    return torch.nn.Conv2d(cin, cout, size, stride, padding=size // 2 if stride == 1 else 0)


class Block(torch.nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1, self.affine1 = _conv(cin, cout, 3, stride), Affine(cout)
        self.conv2, self.affine2 = _conv(cout, cout, 3, 1), Affine(cout)
        self.stride = stride

    def forward(self, x):
        y = self.affine2(self.conv2(F.relu(self.affine1(self.conv1(x)))))
        shortcut = F.avg_pool2d(x, 2, 2) if self.stride == 2 else x
        return F.relu(_add_padded(shortcut, y))

    def convs(self):
        return [(self.conv1, self.affine1), (self.conv2, self.affine2)]


class FaceResNet(torch.nn.Module):
    """(B, 3, 150, 150) float RGB in 0..255 -> (B, 128) face descriptors; the distance between
    two people's descriptors is what tells them apart (dlib: under 0.6, the same person)."""

    def __init__(self):
        super().__init__()
        self.stem, self.stem_affine = _conv(3, 32, 7, 2), Affine(32)
        blocks, cin = [], 32
        for width, count, down in LEVELS:
            for k in range(count):
                blocks.append(Block(cin, width, 2 if down and k == 0 else 1))
                cin = width
        self.blocks = torch.nn.Sequential(*blocks)
        self.fc = torch.nn.Linear(cin, EMBEDDING_SIZE, bias=False)
        self.register_buffer("mean", torch.tensor(MEAN_RGB).view(1, 3, 1, 1), persistent=False)

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        x = (rgb - self.mean) / 256.0
        x = F.max_pool2d(F.relu(self.stem_affine(self.stem(x))), 3, 2)
        x = self.blocks(x)
        return self.fc(x.mean(dim=(2, 3)))

    def convs(self):
        """(convolution, affine) pairs in the order dlib's file lists them."""
        return [(self.stem, self.stem_affine)] + [p for b in self.blocks for p in b.convs()]


def load_resnet(data: bytes) -> FaceResNet:
    """The network from the bytes of dlib_face_recognition_resnet_model_v1.dat (raises
    DlibFormatError when they are not that network)."""
    reader = DlibReader(data)
    net = FaceResNet()
    with torch.no_grad():
        for n, (conv, affine) in enumerate(net.convs()):
            if not reader.seek_text("con_4"):
                raise DlibFormatError(f"convolution {n + 1} of 29 is missing")
            params = reader.tensor().ravel()
            filters, rows, cols, stride_y, _stride_x = (reader.integer() for _ in range(5))
            weight = conv.weight
            if (filters, rows, cols, stride_y) != (weight.shape[0], weight.shape[2], weight.shape[3],
                                                   conv.stride[0]) or params.size != weight.numel() + filters:
                raise DlibFormatError(f"convolution {n + 1} is not the one this network has")
            weight.copy_(torch.from_numpy(params[:weight.numel()].reshape(weight.shape)))
            conv.bias.copy_(torch.from_numpy(params[weight.numel():]))
            if not reader.seek_text("affine_"):
                raise DlibFormatError(f"the affine layer after convolution {n + 1} is missing")
            params = reader.tensor().ravel()
            if params.size != 2 * filters:
                raise DlibFormatError(f"the affine layer after convolution {n + 1} has the wrong size")
            affine.weight.copy_(torch.from_numpy(params[:filters]))
            affine.bias.copy_(torch.from_numpy(params[filters:]))
        if not (reader.seek_text("fc_2") or reader.seek_text("fc_3")):
            raise DlibFormatError("the final fully connected layer is missing")
        outputs, inputs = reader.integer(), reader.integer()
        params = reader.tensor().ravel()
        if (outputs, inputs) != (EMBEDDING_SIZE, net.fc.in_features) or params.size < outputs * inputs:
            raise DlibFormatError("the final fully connected layer has the wrong size")
        # dlib multiplies a row of inputs by an (inputs, outputs) matrix
        net.fc.weight.copy_(torch.from_numpy(np.ascontiguousarray(
            params[:outputs * inputs].reshape(inputs, outputs).T)))
    return net.eval()
