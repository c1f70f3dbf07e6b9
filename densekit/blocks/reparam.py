"""UniRepLKNet's dilated re-parameterisable large-kernel block, 2D (NCHW) and 3D (NCDHW).

Training structure: a depthwise ``K``-sized conv + BN, plus parallel depthwise *dilated* small
convs + BN (kernel ``k_i``, dilation ``d_i``), all summed. Deploy structure
(:meth:`DilatedReparamBlock.switch_to_deploy`): one depthwise ``K`` conv with bias. The merge
uses two exact facts: a BN in eval mode folds into the conv before it
(:func:`densekit.layers.fold_conv_bn`), and a dilated ``k`` kernel equals an undilated kernel of
size ``d (k - 1) + 1`` with zeros between the taps, which is zero-padded to ``K``.

Default branches per ``K`` (UniRepLKNet's table):

====  ===================  ===================
K     kernel sizes         dilations
====  ===================  ===================
17    5, 9, 3, 3, 3        1, 2, 4, 5, 7
15    5, 7, 3, 3, 3        1, 2, 3, 5, 7
13    5, 7, 3, 3, 3        1, 2, 3, 4, 5
11    5, 5, 3, 3, 3        1, 2, 3, 4, 5
9     5, 5, 3, 3           1, 2, 3, 4
7     5, 3, 3              1, 2, 3
5     3, 3                 1, 2
3     (none)
====  ===================  ===================
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from densekit.errors import positive_int
from densekit.layers import ConvNormAct, LayerFactory, fold_conv_bn
from densekit.registry import MODELS

__all__ = ['DilatedReparamBlock', 'REPARAM_BRANCHES', 'dilate_kernel', 'pad_kernel']

#: large kernel size -> (small kernel sizes, dilations)
REPARAM_BRANCHES: Dict[int, Tuple[Tuple[int, ...], Tuple[int, ...]]] = {
    17: ((5, 9, 3, 3, 3), (1, 2, 4, 5, 7)),
    15: ((5, 7, 3, 3, 3), (1, 2, 3, 5, 7)),
    13: ((5, 7, 3, 3, 3), (1, 2, 3, 4, 5)),
    11: ((5, 5, 3, 3, 3), (1, 2, 3, 4, 5)),
    9: ((5, 5, 3, 3), (1, 2, 3, 4)),
    7: ((5, 3, 3), (1, 2, 3)),
    5: ((3, 3), (1, 2)),
    3: ((), ()),
}


def dilate_kernel(weight: Tensor, dilation: int) -> Tensor:
    """The undilated equivalent of a dilated kernel: ``(..., k, k)`` -> ``(..., d(k-1)+1, ...)``
    with zeros between the taps (every trailing ``weight.dim() - 2`` axis is spatial).

    Example:
        >>> dilate_kernel(torch.ones(1, 1, 2, 2), 3)[0, 0]
        tensor([[1., 0., 0., 1.],
                [0., 0., 0., 0.],
                [0., 0., 0., 0.],
                [1., 0., 0., 1.]])
    """
    if dilation == 1:
        return weight
    spatial = weight.shape[2:]
    out = weight.new_zeros(tuple(weight.shape[:2]) + tuple(dilation * (k - 1) + 1
                                                          for k in spatial))
    index = (slice(None), slice(None)) + (slice(None, None, dilation),) * len(spatial)
    out[index] = weight
    return out


def pad_kernel(weight: Tensor, size: Sequence[int]) -> Tensor:
    """Zero-pad a centred odd kernel ``(C_out, C_in, *k)`` to ``(C_out, C_in, *size)``."""
    pads = []
    for k, s in zip(reversed(weight.shape[2:]), reversed(list(size))):
        if (s - k) % 2 or s < k:
            raise ValueError(f'cannot centre a kernel of size {k} in {s}')
        pads += [(s - k) // 2] * 2
    return F.pad(weight, pads)


@MODELS.register_module()
class DilatedReparamBlock(nn.Module):
    """Depthwise large-kernel conv with parallel dilated small-kernel branches (re-parameterisable).

    Args:
        spatial_dims: 2 (NCHW) or 3 (NCDHW).
        channels: Input (= output) channels; every conv is depthwise.
        kernel_size: Large kernel ``K`` (odd).
        kernel_sizes: Branch kernel sizes (default: the table in the module docstring).
        dilations: Branch dilations (same length as ``kernel_sizes``).
        norm_cfg: Norm of every branch (a BatchNorm, so it can be folded).
        deploy: Build the merged single-conv structure directly.

    Raises:
        ValueError: even ``K``, a ``K`` missing from the table without explicit branches,
            mismatched branch lists, or a branch whose dilated size ``d (k - 1) + 1`` exceeds
            ``K`` or is even.

    Example:
        >>> block = DilatedReparamBlock(2, 8, 7).eval()
        >>> x = torch.rand(1, 8, 13, 11)
        >>> y = block(x)
        >>> torch.allclose(block.switch_to_deploy()(x), y, atol=1e-5)
        True
    """
    per_sample_eval = True  # eval forward: samples independent, no state (batching.py)

    def __init__(self, spatial_dims: int, channels: int, kernel_size: int,
                 kernel_sizes: Optional[Sequence[int]] = None,
                 dilations: Optional[Sequence[int]] = None,
                 norm_cfg: Any = dict(type='BN'),  # noqa: B006
                 deploy: bool = False) -> None:
        super().__init__()
        factory = LayerFactory(spatial_dims)
        self.spatial_dims = factory.spatial_dims
        positive_int(channels, 'channels')
        if not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f'kernel_size must be a positive odd int, got {kernel_size!r}')
        if kernel_sizes is None and dilations is None:
            if kernel_size not in REPARAM_BRANCHES:
                raise ValueError(f'kernel_size={kernel_size} has no default branches (known: '
                                 f'{sorted(REPARAM_BRANCHES)}); pass kernel_sizes and dilations')
            kernel_sizes, dilations = REPARAM_BRANCHES[kernel_size]
        if kernel_sizes is None or dilations is None or len(kernel_sizes) != len(dilations):
            raise ValueError(f'kernel_sizes={kernel_sizes!r} and dilations={dilations!r} must be '
                             f'given together with one dilation per kernel size')
        for k, d in zip(kernel_sizes, dilations):
            size = d * (k - 1) + 1
            if k < 1 or d < 1 or size > kernel_size or size % 2 == 0:
                raise ValueError(f'branch kernel {k} with dilation {d} spans {size}; it must be '
                                 f'odd and at most kernel_size={kernel_size}')
        self.channels, self.kernel_size = channels, kernel_size
        self.kernel_sizes, self.dilations = tuple(kernel_sizes), tuple(dilations)
        self.deploy = bool(deploy)
        if self.deploy:
            self.lk_reparam = factory.conv(channels, channels, kernel_size,
                                           padding=kernel_size // 2, groups=channels)
            return
        self.lk_origin = ConvNormAct(spatial_dims, channels, channels, kernel_size,
                                     padding=kernel_size // 2, groups=channels,
                                     norm_cfg=norm_cfg, act_cfg=None)
        self.branches = nn.ModuleList(
            ConvNormAct(spatial_dims, channels, channels, k, padding=d * (k - 1) // 2,
                        dilation=d, groups=channels, norm_cfg=norm_cfg, act_cfg=None)
            for k, d in zip(self.kernel_sizes, self.dilations))

    def forward(self, x: Tensor) -> Tensor:
        """``(N, C, *spatial)`` -> same shape."""
        if self.deploy:
            return self.lk_reparam(x)
        out = self.lk_origin(x)
        for branch in self.branches:
            out = out + branch(x)
        return out

    @staticmethod
    def _folded(unit: ConvNormAct) -> Tuple[Tensor, Tensor]:
        weight, bias = unit.conv.weight, unit.conv.bias
        norm = unit.norm
        if norm is None:
            return weight, bias if bias is not None else weight.new_zeros(weight.shape[0])
        if not isinstance(norm, nn.modules.batchnorm._BatchNorm):
            raise TypeError(f'only BatchNorm branches can be merged, got {type(norm).__name__}')
        norm.eval()
        return fold_conv_bn(weight, bias, norm)

    @torch.no_grad()
    def merged_kernel(self) -> Tuple[Tensor, Tensor]:
        """The equivalent single depthwise ``(weight, bias)`` (BN in eval mode)."""
        if self.deploy:
            return self.lk_reparam.weight.detach(), self.lk_reparam.bias.detach()
        weight, bias = self._folded(self.lk_origin)
        size = weight.shape[2:]
        for branch, d in zip(self.branches, self.dilations):
            w, b = self._folded(branch)
            weight = weight + pad_kernel(dilate_kernel(w, d), size)
            bias = bias + b
        return weight, bias

    @torch.no_grad()
    def switch_to_deploy(self) -> DilatedReparamBlock:
        """Merge every branch and BN into one depthwise conv with bias (in place); returns self."""
        if self.deploy:
            return self
        weight, bias = self.merged_kernel()
        conv = LayerFactory(self.spatial_dims).conv(
            self.channels, self.channels, self.kernel_size, padding=self.kernel_size // 2,
            groups=self.channels).to(weight)
        conv.weight.copy_(weight)
        conv.bias.copy_(bias)
        del self.lk_origin, self.branches
        self.lk_reparam = conv
        self.deploy = True
        return self

    reparameterize = switch_to_deploy


@MODELS.register_module()
class LargeKernelResBlock(nn.Module):
    """Residual block with a :class:`DilatedReparamBlock` mixer, for restoration bodies.

    ``x + res_scale * pw2(GELU(pw1(DRB(x))))``: a depthwise large-kernel mixer (no norm by
    default, as EDSR drops BatchNorm; its branches then carry biases and still merge exactly)
    and a pointwise FFN of ``ffn_ratio * channels`` hidden channels.

    Args:
        channels: Input (= output) channels.
        kernel_size: Large kernel of the mixer.
        res_scale: Residual scaling.
        ffn_ratio: Hidden width of the pointwise FFN, in multiples of ``channels``.
        spatial_dims: 2 (NCHW) or 3 (NCDHW).
        norm_cfg: Norm of the mixer's branches (None, or a BatchNorm).

    Example:
        >>> block = LargeKernelResBlock(16, kernel_size=7).eval()
        >>> x = torch.rand(1, 16, 9, 10)
        >>> torch.allclose(block(x), block.switch_to_deploy()(x), atol=1e-5)
        True
    """

    def __init__(self, channels: int, kernel_size: int = 13, res_scale: float = 1.0,
                 ffn_ratio: int = 2, spatial_dims: int = 2, norm_cfg: Any = None) -> None:
        super().__init__()
        factory = LayerFactory(spatial_dims)
        positive_int(ffn_ratio, 'ffn_ratio')
        self.res_scale = float(res_scale)
        self.mixer = DilatedReparamBlock(spatial_dims, channels, kernel_size, norm_cfg=norm_cfg)
        self.pw1 = factory.conv(channels, channels * ffn_ratio, 1)
        self.act = nn.GELU()
        self.pw2 = factory.conv(channels * ffn_ratio, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        """``(N, C, *spatial)`` -> same shape."""
        return x + self.res_scale * self.pw2(self.act(self.pw1(self.mixer(x))))

    def switch_to_deploy(self) -> LargeKernelResBlock:
        """Merge the mixer's branches (in place); returns self."""
        self.mixer.switch_to_deploy()
        return self
