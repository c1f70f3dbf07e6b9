"""STU-Net building blocks: the residual block and the weight-free upsampling, dimension-generic.

* :class:`ConvNormResBlock` - conv3 -> InstanceNorm(affine) -> LeakyReLU -> conv3 -> IN, plus the
  shortcut (identity, or a 1x1 conv with the block's stride when the shape changes), then
  LeakyReLU. The stride sits in the first conv.
* :class:`UpConcat` - nearest upsampling and a 1x1 conv to the skip's channels, concatenated
  with the skip. The 1x1 conv runs *before* the upsampling: a pointwise conv commutes with
  nearest upsampling, so the result is STU-Net's (upsample, then conv) at 1/8 of the cost.

Every conv, norm and activation comes from :class:`~densekit.layers.ConvNormAct` /
:class:`~densekit.layers.LayerFactory`, so ``spatial_dims=2`` gives the 2D blocks.
Under :func:`~densekit.accel.volumetric.fast_inference` the residual block takes an
exact fast path (in-place norm, activation and residual).
"""
from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from densekit.accel.volumetric import instance_norm_act_, is_fast_inference
from densekit.layers import ConvNormAct, LayerFactory, as_tuple

__all__ = ['ConvNormResBlock', 'UpConcat', 'DEFAULT_NORM', 'DEFAULT_ACT', 'per_stage',
           'positive_int_list', 'run_blocks']

DEFAULT_NORM = dict(type='IN', affine=True)
DEFAULT_ACT = dict(type='LeakyReLU', negative_slope=0.01)


def _slope(act: Optional[nn.Module]) -> Optional[float]:
    if isinstance(act, nn.LeakyReLU):
        return float(act.negative_slope)
    if isinstance(act, nn.ReLU):
        return 0.0
    return None


def _is_instance_norm(norm: Optional[nn.Module]) -> bool:
    return isinstance(norm, nn.modules.instancenorm._InstanceNorm) and \
        not norm.track_running_stats


class ConvNormResBlock(nn.Module):
    """STU-Net residual block.

    Args:
        spatial_dims: 3 (NCDHW) or 2 (NCHW).
        in_channels: Input channels.
        out_channels: Output channels.
        stride: Stride of the first conv and of the shortcut (int or per axis).
        kernel_size: Kernel of both convs (3 in STU-Net; odd, int or per axis, e.g.
            ``(1, 3, 3)`` for thick slices).
        norm_cfg: Norm spec (default ``dict(type='IN', affine=True)``).
        act_cfg: Activation spec (default LeakyReLU 0.01).

    Example:
        >>> block = ConvNormResBlock(3, 4, 8, stride=2)
        >>> block(torch.rand(2, 4, 16, 16, 8)).shape
        torch.Size([2, 8, 8, 8, 4])
    """
    per_sample_eval = True  # eval forward: samples independent, no state (batching.py)

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int,
                 stride: Union[int, Sequence[int]] = 1,
                 kernel_size: Union[int, Sequence[int]] = 3,
                 norm_cfg: Any = DEFAULT_NORM, act_cfg: Any = DEFAULT_ACT) -> None:
        super().__init__()
        stride = as_tuple(stride, spatial_dims, 'stride', minimum=1)
        kernel_size = as_tuple(kernel_size, spatial_dims, 'kernel_size', minimum=1)
        if any(k % 2 == 0 for k in kernel_size):
            raise ValueError(f'kernel_size must be odd on every axis, got {kernel_size}')
        pad = tuple(k // 2 for k in kernel_size)
        self.conv1 = ConvNormAct(spatial_dims, in_channels, out_channels, kernel_size,
                                 stride=stride, padding=pad, norm_cfg=norm_cfg, act_cfg=act_cfg)
        self.conv2 = ConvNormAct(spatial_dims, out_channels, out_channels, kernel_size,
                                 padding=pad, norm_cfg=norm_cfg, act_cfg=None)
        self.shortcut: Optional[ConvNormAct] = None
        if in_channels != out_channels or any(s != 1 for s in stride):
            self.shortcut = ConvNormAct(spatial_dims, in_channels, out_channels, 1,
                                        stride=stride, bias=True, norm_cfg=None, act_cfg=None)
        self.act = LayerFactory(spatial_dims).act(act_cfg)
        self._fusable = (_is_instance_norm(self.conv1.norm) and
                         _is_instance_norm(self.conv2.norm) and _slope(self.act) is not None
                         and _slope(self.conv1.activate) is not None)

    def forward(self, x: Tensor) -> Tensor:
        """``(N, C_in, *spatial)`` -> ``(N, C_out, *spatial / stride)``."""
        if self._fusable and self.conv1.fast_eval and is_fast_inference(x):
            return self._forward_fast(x)
        y = self.conv2(self.conv1(x))
        residual = x if self.shortcut is None else self.shortcut(x)
        return self.act(y + residual)

    def _forward_fast(self, x: Tensor) -> Tensor:
        y = instance_norm_act_(self.conv1.conv(x), self.conv1.norm, _slope(self.conv1.activate))
        y = instance_norm_act_(self.conv2.conv(y), self.conv2.norm, None)
        y.add_(x if self.shortcut is None else self.shortcut.conv(x))
        return F.leaky_relu_(y, _slope(self.act))


class UpConcat(nn.Module):
    """Upsample the coarse map to the skip's size and concatenate: ``[up(conv1x1(x)), skip]``.

    Args:
        spatial_dims: 3 or 2.
        in_channels: Channels of the coarse map.
        skip_channels: Channels of the skip (and of the upsampled map).

    Example:
        >>> up = UpConcat(3, 16, 8)
        >>> up(torch.rand(1, 16, 4, 4, 4), torch.rand(1, 8, 8, 8, 8)).shape
        torch.Size([1, 16, 8, 8, 8])
    """
    per_sample_eval = True  # eval forward: samples independent, no state (batching.py)

    def __init__(self, spatial_dims: int, in_channels: int, skip_channels: int) -> None:
        super().__init__()
        self.spatial_dims = spatial_dims
        self.proj = ConvNormAct(spatial_dims, in_channels, skip_channels, 1, bias=True,
                                norm_cfg=None, act_cfg=None)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        """``x`` ``(N, C_in, *coarse)`` and ``skip`` ``(N, C_skip, *fine)`` ->
        ``(N, 2 C_skip, *fine)``."""
        low = self.proj(x)
        up = F.interpolate(low, size=tuple(skip.shape[2:]), mode='nearest')
        return torch.cat([up, skip], dim=1)


def positive_int_list(values: Any, argname: str) -> Tuple[int, ...]:
    """``values`` as a tuple if it is a non-empty list / tuple of positive ints."""
    if not isinstance(values, (list, tuple)) or not values:
        raise ValueError(f'{argname} must be a non-empty list of positive ints, got {values!r}')
    for v in values:
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f'{argname} must hold positive ints, got {tuple(values)!r}')
    return tuple(values)


def per_stage(values: Any, count: int, spatial_dims: int, argname: str
               ) -> List[Tuple[int, ...]]:
    """One per-axis tuple per stage: an int or a sequence of ints applies to every stage; a
    sequence holding sequences gives one entry (int or per-axis) per stage."""
    if isinstance(values, (list, tuple)) and any(isinstance(v, (list, tuple)) for v in values):
        items = list(values)
        if len(items) != count:
            raise ValueError(f'{argname} needs {count} entries (one per stage), got {values!r}')
        return [as_tuple(v, spatial_dims, f'{argname} item', minimum=1) for v in items]
    return [as_tuple(values, spatial_dims, argname, minimum=1)] * count


def run_blocks(blocks: nn.Sequential, x: Tensor, with_cp: bool) -> Tensor:
    """Run ``blocks`` in order, with activation checkpointing where it saves memory."""
    for block in blocks:
        # blocks that store no activations themselves (reversible ones) gain nothing from it
        if with_cp and x.requires_grad and not getattr(block, 'stores_no_activations', False):
            x = checkpoint(block, x, use_reentrant=False)
        else:
            x = block(x)
    return x
