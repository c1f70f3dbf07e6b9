"""``ConvNormAct``: conv -> norm -> activation, the unit every densekit neck is built from.

Constructor arguments follow mmcv's ``ConvModule`` (``conv_cfg`` / ``norm_cfg`` / ``act_cfg``,
``bias='auto'``, ``inplace``) with ``spatial_dims`` first, and the state-dict keys are
ConvModule's (``conv.weight``, ``bn.running_mean``, ``gn.weight``, ``activate.weight``...), so
OpenMMLab checkpoints load as they are.

The block expresses the plain computation; the execution layer (:mod:`densekit.accel`) decides
per call whether an exact fast path replaces part of it (only on CPU float32, outside autocast,
tracing, export and compile, and while the switch and ``fast_eval`` allow it):

* ``fold_bn``: a BatchNorm using running statistics is folded into the conv weights
  (:func:`~densekit.layers.fold.fold_conv_bn`), recomputed from the current parameters on every
  call, so no edit of the weights (``.data``, EMA swaps, ``load_state_dict``, ``.to()``) can
  leave it stale; only where the weight is smaller than the conv output
  (:func:`~densekit.layers.fold.fold_pays`), else the BatchNorm runs on the output as usual;
  :func:`fuse_model` makes the folding permanent (deploy);
* ``channels_last``: the folded weight is written channels-last for a channels-last input;
* ``inplace``: without autograd the activation runs in place on the fresh conv output;
* ``tap_skip`` / ``polyphase``: the conv algorithm (:func:`~densekit.accel.conv.conv_forward`).
"""
from __future__ import annotations

from typing import Any, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from densekit.accel import fast_paths, use
from densekit.accel.conv import conv_forward, is_plain_conv, polyphase_factors
from densekit.accel.polyphase import batch_to_space, conv_phases, is_channels_last
from densekit.errors import positive_int
from densekit.layers.factory import LayerFactory, as_tuple
from densekit.layers.fold import can_fold, fold_conv_bn, fold_pays

__all__ = ['ConvNormAct', 'SeparableConvNormAct', 'conv_forward', 'fuse_model']

_INPLACE_FNS = {
    nn.ReLU: lambda m, x: torch.relu_(x),
    nn.LeakyReLU: lambda m, x: F.leaky_relu_(x, m.negative_slope),
    nn.ReLU6: lambda m, x: F.hardtanh_(x, 0.0, 6.0),
    nn.ELU: lambda m, x: F.elu_(x, m.alpha),
    nn.SiLU: lambda m, x: F.silu(x, inplace=True),
    nn.Hardswish: lambda m, x: F.hardswish(x, inplace=True),
    nn.Hardsigmoid: lambda m, x: F.hardsigmoid(x, inplace=True),
}
_FORMATS = {4: torch.channels_last, 5: torch.channels_last_3d}


class ConvNormAct(nn.Module):
    """Convolution, optional normalisation and optional activation (mmcv ``ConvModule``-like).

    Args:
        spatial_dims: 2 (NCHW) or 3 (NCDHW).
        in_channels: Input channels.
        out_channels: Output channels.
        kernel_size: Int or per-axis tuple.
        stride: Int or per-axis tuple.
        padding: Int or per-axis tuple.
        dilation: Int or per-axis tuple.
        groups: Conv groups; must divide both channel counts.
        bias: ``'auto'`` (bias only without a norm), True or False.
        conv_cfg: Conv spec (None = plain conv of ``spatial_dims``).
        norm_cfg: Norm spec, e.g. ``dict(type='BN')`` or ``dict(type='GN', num_groups=32)``.
        act_cfg: Activation spec, e.g. ``dict(type='ReLU')``; None for no activation.
        inplace: Run the activation in place (in training; without autograd it always is).
        fast_eval: Allow the fast paths of :mod:`densekit.accel` for this block (see the
            module docstring); False always runs the plain conv, norm and activation.

    Raises:
        ValueError: bad channel counts, groups, per-axis tuple lengths or layer specs.

    Example:
        >>> block = ConvNormAct(3, 4, 8, 3, padding=1, norm_cfg=dict(type='BN'))
        >>> block(torch.randn(2, 4, 6, 7, 9)).shape
        torch.Size([2, 8, 6, 7, 9])
        >>> sorted(block.state_dict())[:2]
        ['bn.bias', 'bn.num_batches_tracked']
    """
    per_sample_eval = True  # eval forward: samples independent, no state (batching.py)

    _abbr_ = 'conv_block'

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int,
                 kernel_size: Union[int, Tuple[int, ...]], stride: Union[int, Tuple[int, ...]] = 1,
                 padding: Union[int, Tuple[int, ...]] = 0,
                 dilation: Union[int, Tuple[int, ...]] = 1, groups: int = 1,
                 bias: Union[bool, str] = 'auto', conv_cfg: Any = None, norm_cfg: Any = None,
                 act_cfg: Any = dict(type='ReLU'), inplace: bool = True,  # noqa: B006
                 fast_eval: bool = True) -> None:
        super().__init__()
        layers = LayerFactory(spatial_dims)
        self.spatial_dims = layers.spatial_dims
        for name, value in (('in_channels', in_channels), ('out_channels', out_channels),
                            ('groups', groups)):
            positive_int(value, name)
        if in_channels % groups or out_channels % groups:
            raise ValueError(f'groups={groups} must divide in_channels={in_channels} and '
                             f'out_channels={out_channels}')
        padding_arg = padding  # kept as given: ConvModule's ``padding`` attribute is the argument
        kernel_size = as_tuple(kernel_size, spatial_dims, 'kernel_size', minimum=1)
        stride = as_tuple(stride, spatial_dims, 'stride', minimum=1)
        padding = as_tuple(padding, spatial_dims, 'padding', minimum=0)
        dilation = as_tuple(dilation, spatial_dims, 'dilation', minimum=1)
        if bias not in ('auto', True, False):
            raise ValueError(f"bias must be 'auto', True or False, got {bias!r}")
        self.with_norm = norm_cfg is not None
        self.with_activation = act_cfg is not None
        self.with_bias = (not self.with_norm) if bias == 'auto' else bool(bias)
        self.conv_cfg, self.norm_cfg, self.act_cfg = conv_cfg, norm_cfg, act_cfg
        self.inplace = inplace
        self.fast_eval = fast_eval

        self.conv = layers.conv(in_channels, out_channels, kernel_size, stride=stride,
                                padding=padding, dilation=dilation, groups=groups,
                                bias=self.with_bias, spec=conv_cfg)
        self.in_channels, self.out_channels = in_channels, out_channels
        # as mmcv's ConvModule: per-axis tuples, except ``padding``, which is the argument as
        # given (``self.conv.padding`` is the per-axis tuple)
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding_arg
        self.dilation, self.groups = dilation, groups
        self.norm_name: Optional[str] = None
        if self.with_norm:
            self.norm_name, norm = layers.norm(norm_cfg, out_channels)
            self.add_module(self.norm_name, norm)
        if self.with_activation:
            self.activate = layers.act(act_cfg, inplace=inplace)
        self.init_weights()

    @property
    def norm(self) -> Optional[nn.Module]:
        """The normalisation layer (``None`` without one)."""
        return getattr(self, self.norm_name) if self.norm_name else None

    def init_weights(self) -> None:
        """Kaiming-normal conv (fan-out, as mmcv), unit-weight zero-bias norm."""
        act_name = ''
        if self.with_activation:
            act_name = type(self.activate).__name__
        if hasattr(self.conv, 'weight') and not hasattr(self.conv, 'init_weights'):
            slope = getattr(self.activate, 'negative_slope', 0.0) if act_name else 0.0
            nonlinearity = 'leaky_relu' if act_name == 'LeakyReLU' else 'relu'
            nn.init.kaiming_normal_(self.conv.weight, a=slope, mode='fan_out',
                                    nonlinearity=nonlinearity)
            if self.conv.bias is not None:
                nn.init.zeros_(self.conv.bias)
        norm = self.norm
        if norm is not None and getattr(norm, 'weight', None) is not None:
            nn.init.ones_(norm.weight)
            nn.init.zeros_(norm.bias)

    # -- fast path -----------------------------------------------------------------------------
    def folds_norm(self, like: Optional[Tensor] = None) -> bool:
        """Whether the next forward (on ``like``) folds the norm into the conv."""
        if not (self.fast_eval and can_fold(self.conv, self.norm)):
            return False
        if like is None:
            return use('fold_bn', self.conv.weight)
        return use('fold_bn', like, self.conv.weight) and fold_pays(self.conv, like)

    def conv_params(self, like: Optional[Tensor] = None
                    ) -> Tuple[Optional[Tensor], Optional[Tensor], bool]:
        """Effective ``(weight, bias, norm_folded)`` of the conv for the next forward.

        The fold is computed from the current parameters and statistics (no cache). Without
        autograd a folded weight is written in the memory format of ``like`` (the input).
        """
        weight, bias = getattr(self.conv, 'weight', None), getattr(self.conv, 'bias', None)
        folded = self.folds_norm(like)
        if not folded:
            return weight, bias, False
        if torch.is_grad_enabled():
            weight, bias = fold_conv_bn(weight, bias, self.norm)
            return weight, bias, True
        with torch.no_grad():
            fmt = torch.contiguous_format
            if like is not None and is_channels_last(like) and use('channels_last', like):
                fmt = _FORMATS[weight.dim()]
            weight, bias = fold_conv_bn(weight, bias, self.norm, memory_format=fmt)
        return weight, bias, True

    def after_conv(self, y: Tensor, norm_folded: bool, inplace_ok: bool = True) -> Tensor:
        """Apply the norm (unless folded) and the activation to a conv output ``y``.

        ``inplace_ok`` says ``y`` is a fresh tensor nobody else reads, so without autograd the
        activation may overwrite it.
        """
        if self.with_norm and not norm_folded:
            y = self.norm(y)
            inplace_ok = True
        if self.with_activation:
            fn = _INPLACE_FNS.get(type(self.activate))
            if fn is not None and inplace_ok and self.fast_eval and not torch.is_grad_enabled() \
                    and use('inplace', y):
                y = fn(self.activate, y)
            else:
                y = self.activate(y)
        return y

    def forward(self, x: Tensor, out: Optional[Tensor] = None) -> Tensor:
        """Conv -> norm -> activation.

        Args:
            x: ``(N, C_in, H, W)`` or ``(N, C_in, D, H, W)``.
            out: Optional tensor (e.g. a channel slice of a concat buffer) to write the
                result into; only without autograd.

        Returns:
            ``(N, C_out, *out_spatial)``.
        """
        if not self.fast_eval:  # also keeps fast_inference()'s op routes off this block
            with fast_paths(False):
                return self._forward(x, out)
        return self._forward(x, out)

    def _forward(self, x: Tensor, out: Optional[Tensor]) -> Tensor:
        weight, bias, folded = self.conv_params(like=x)
        conv_out = out if out is not None and (folded or not self.with_norm) else None
        y = conv_forward(self.conv, x, weight, bias, out=conv_out, fast=self.fast_eval)
        y = self.after_conv(y, folded)
        if out is not None and y is not out:
            out.copy_(y)
            return out
        return y

    # -- polyphase execution (used by SeparableConvNormAct) ---------------------------------------
    def polyphase_factors(self, x: Tensor) -> Optional[Tuple[int, ...]]:
        """The dilation if this block's conv would run on polyphase components of ``x``."""
        if not is_plain_conv(self.conv):
            return None
        return polyphase_factors(self.conv, x, fast=self.fast_eval)

    def pointwise_in_phases(self, x: Tensor, factors: Sequence[int]) -> bool:
        """Whether norm and activation act the same on polyphase components of ``x``: no norm,
        a BatchNorm using running statistics, or a training BatchNorm when no zero padding is
        added (its batch statistics then cover exactly the same values)."""
        norm = self.norm
        if norm is None or self.folds_norm(x):
            return True
        divisible = all(s % f == 0 for s, f in zip(x.shape[2:], factors))
        return isinstance(norm, _BatchNorm) and (not norm.training or divisible)

    def forward_phases(self, x: Tensor, factors: Sequence[int]) -> Tensor:
        """Conv -> norm -> act of ``x`` computed on its polyphase components.

        Returns:
            The result in polyphase layout (see
            :func:`~densekit.accel.polyphase.space_to_batch`); only valid when
            :meth:`pointwise_in_phases` holds.
        """
        weight, bias, folded = self.conv_params(like=x)
        return self.after_conv(conv_phases(x, weight, bias, factors, self.groups), folded)

    @torch.no_grad()
    def fuse(self) -> ConvNormAct:
        """Deploy: fold a BatchNorm into the conv permanently (state dict loses the norm keys)."""
        if not isinstance(self.norm, _BatchNorm) or self.norm.running_mean is None:
            return self
        self.norm.eval()
        if not can_fold(self.conv, self.norm):
            return self
        weight, bias = fold_conv_bn(self.conv.weight, self.conv.bias, self.norm)
        conv = self.conv
        if conv.bias is None:
            conv.bias = nn.Parameter(torch.empty_like(bias))
        conv.weight.copy_(weight)
        conv.bias.copy_(bias)
        delattr(self, self.norm_name)
        self.norm_name, self.with_norm = None, False
        return self


class SeparableConvNormAct(nn.Module):
    """Depthwise conv + pointwise conv, each a :class:`ConvNormAct` (mmcv's
    ``DepthwiseSeparableConvModule``; keys ``depthwise_conv.*`` / ``pointwise_conv.*``).

    Args:
        spatial_dims: 2 (NCHW) or 3 (NCDHW).
        in_channels: Input channels (= depthwise groups).
        out_channels: Output channels of the pointwise conv.
        kernel_size, stride, padding, dilation: Of the depthwise conv.
        norm_cfg, act_cfg: Defaults for both convs.
        dw_norm_cfg, dw_act_cfg, pw_norm_cfg, pw_act_cfg: Per-conv overrides; ``'default'``
            means "use norm_cfg / act_cfg".
        **kwargs: Passed to both :class:`ConvNormAct` (``conv_cfg``, ``inplace``...).

    Example:
        >>> block = SeparableConvNormAct(2, 8, 4, 3, padding=2, dilation=2,
        ...                              norm_cfg=dict(type='BN'), dw_act_cfg=None)
        >>> block(torch.randn(1, 8, 9, 11)).shape
        torch.Size([1, 4, 9, 11])
    """

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int,
                 kernel_size: Union[int, Tuple[int, ...]], stride: Union[int, Tuple[int, ...]] = 1,
                 padding: Union[int, Tuple[int, ...]] = 0,
                 dilation: Union[int, Tuple[int, ...]] = 1, norm_cfg: Any = None,
                 act_cfg: Any = dict(type='ReLU'), dw_norm_cfg: Any = 'default',  # noqa: B006
                 dw_act_cfg: Any = 'default', pw_norm_cfg: Any = 'default',
                 pw_act_cfg: Any = 'default', **kwargs: Any) -> None:
        super().__init__()
        if 'groups' in kwargs:
            raise ValueError('groups is fixed to in_channels for a separable conv; remove it')

        def pick(value: Any, default: Any) -> Any:
            return default if isinstance(value, str) and value == 'default' else value

        self.depthwise_conv = ConvNormAct(
            spatial_dims, in_channels, in_channels, kernel_size, stride=stride, padding=padding,
            dilation=dilation, groups=in_channels, norm_cfg=pick(dw_norm_cfg, norm_cfg),
            act_cfg=pick(dw_act_cfg, act_cfg), **kwargs)
        self.pointwise_conv = ConvNormAct(
            spatial_dims, in_channels, out_channels, 1, norm_cfg=pick(pw_norm_cfg, norm_cfg),
            act_cfg=pick(pw_act_cfg, act_cfg), **kwargs)

    def forward(self, x: Tensor, out: Optional[Tensor] = None) -> Tensor:
        """Depthwise then pointwise.

        Args:
            x: ``(N, C_in, *spatial)``, NCHW or NCDHW.
            out: Optional tensor to write the result into (no autograd).

        Returns:
            ``(N, out_channels, *spatial)`` (stride 1). When the depthwise conv runs on
            polyphase components, the pointwise conv (and the norms, when they allow it) runs
            there too, so only the narrower output is shuffled back.
        """
        if out is not None:
            y, factors = self.forward_deferred(x, out=out)
            return out if factors is None else batch_to_space(y, factors, x.shape[2:], out=out)
        y, factors = self.forward_deferred(x)
        return y if factors is None else batch_to_space(y, factors, x.shape[2:])

    def forward_deferred(self, x: Tensor, out: Optional[Tensor] = None
                         ) -> Tuple[Tensor, Optional[Tuple[int, ...]]]:
        """Like :meth:`forward`, but a result computed on polyphase components is returned in
        that layout with its factors (``(y, factors)``; ``factors`` None: ``y`` is the normal
        result), so a caller can merge it with others (:func:`~densekit.layers.cat_phases`)
        without an intermediate copy. ``out`` is only filled for a normal-layout result."""
        dw, pw = self.depthwise_conv, self.pointwise_conv
        factors = dw.polyphase_factors(x)
        if factors is None or not (dw.pointwise_in_phases(x, factors)
                                   and pw.pointwise_in_phases(x, factors)):
            return pw(dw(x), out=out), None
        return pw(dw.forward_phases(x, factors)), factors


def fuse_model(model: nn.Module) -> nn.Module:
    """Deploy: :meth:`ConvNormAct.fuse` every block of ``model`` (BatchNorms folded for good,
    their state-dict keys removed). Returns ``model`` in eval mode."""
    model.eval()
    for module in model.modules():
        if isinstance(module, ConvNormAct):
            module.fuse()
    return model
