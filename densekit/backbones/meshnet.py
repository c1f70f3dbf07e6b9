"""MeshNet: a dilated convolution stack with no down- or up-sampling (Fedorov et al.).

The 2025 stroke-lesion MeshNet (arXiv 2503.05531) keeps the width ``C`` constant and the
resolution unchanged: nine 3^3 convolutions (with bias) + BatchNorm + ReLU whose dilations
first grow and then shrink ("encoder-decoder in dilation": 1, 2, 4, 8, 16, 16, 8, 4, 2), then a
1^3 classifier. Every conv is padded by its dilation, so the output has the input's size for
any input size, odd ones included. The receptive field is ``1 + 2 * sum(dilations)`` voxels per
axis (123 for the paper's schedule). With one input channel and two classes the paper's
MeshNet-5 / -16 / -26 have 5,682 / 56,194 / 147,474 parameters, which this module reproduces.

In :class:`~densekit.tasks.medical3d.MedicalSegmentor` MeshNet is the whole network: give it as
the backbone with ``decode_head=None`` (see ``configs/medical3d/meshnet-*``).
"""
from __future__ import annotations

from typing import Any, Sequence, Tuple, Union

from torch import Tensor, nn

from densekit.errors import ArgumentError, positive_int
from densekit.layers import ConvNormAct
from densekit.layers.factory import LayerFactory, as_tuple, check_spatial_dims
from densekit.registry import MODELS

__all__ = ['MeshNet', 'PAPER_DILATIONS']

#: The nine 3^3 layers' dilations of the 2025 MeshNet ("encoder-decoder in dilation").
PAPER_DILATIONS: Tuple[int, ...] = (1, 2, 4, 8, 16, 16, 8, 4, 2)



@MODELS.register_module()
class MeshNet(nn.Module):
    """MeshNet: constant-width dilated 3^3 conv stack + 1^3 classifier, full resolution.

    Args:
        in_channels: Input channels (image modalities).
        num_classes: Output classes, background included (>= 2).
        channels: Width ``C`` of every layer ("MeshNet-C"; the paper uses 5, 16 and 26).
        dilations: One entry per 3^3 layer (an int, or a per-axis tuple for anisotropic
            voxels); the number of entries is the depth. Default: the paper's nine.
        spatial_dims: 3 (volumes, NCDHW) or 2 (images).
        norm_cfg: Norm spec after each conv (default BatchNorm, as the paper).
        act_cfg: Activation spec (default ReLU).
        dropout: Channel-dropout probability after each layer (0 = none, the default).

    Raises:
        ArgumentError: a non-positive or non-int count, fewer than two classes, an empty or
            non-positive dilation schedule, a dropout outside ``[0, 1)``.
        ValueError: ``spatial_dims`` not 2 or 3.

    Example:
        >>> net = MeshNet(in_channels=1, num_classes=2, channels=5)
        >>> sum(p.numel() for p in net.parameters())
        5682
        >>> net.receptive_field
        (123, 123, 123)
        >>> net(torch.rand(1, 1, 9, 12, 7)).shape
        torch.Size([1, 2, 9, 12, 7])
    """
    per_sample_eval = True  # eval forward: samples independent, no state (batching.py)

    def __init__(self, in_channels: int = 1, num_classes: int = 2, channels: int = 16,
                 dilations: Sequence[Union[int, Sequence[int]]] = PAPER_DILATIONS,
                 spatial_dims: int = 3, norm_cfg: Any = dict(type='BN'),  # noqa: B006
                 act_cfg: Any = dict(type='ReLU'), dropout: float = 0.0) -> None:  # noqa: B006
        super().__init__()
        self.spatial_dims = check_spatial_dims(spatial_dims)
        self.in_channels = positive_int(in_channels, 'in_channels')
        self.channels = positive_int(channels, 'channels')
        if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 2:
            raise ArgumentError(f'num_classes must be an int >= 2 (background included), got '
                                f'{num_classes!r}')
        self.num_classes = num_classes
        if isinstance(dilations, (str, bytes)) or not isinstance(dilations, Sequence) \
                or len(dilations) == 0:
            raise ArgumentError(f'dilations must be a non-empty sequence with one entry per '
                                f'3^3 layer (e.g. {PAPER_DILATIONS}), got {dilations!r}')
        try:
            self.dilations = tuple(as_tuple(d, self.spatial_dims, f'dilations[{i}]', minimum=1)
                                   for i, d in enumerate(dilations))
        except (TypeError, ValueError) as err:
            raise ArgumentError(f'dilations={tuple(dilations)!r}: {err}') from err
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) \
                or not 0.0 <= dropout < 1.0:
            raise ArgumentError(f'dropout must be a probability in [0, 1), got {dropout!r}')
        self.dropout = float(dropout)

        factory = LayerFactory(self.spatial_dims)
        layers = []
        width_in = self.in_channels
        for dilation in self.dilations:
            layers.append(ConvNormAct(self.spatial_dims, width_in, self.channels, 3,
                                      padding=dilation, dilation=dilation, bias=True,
                                      norm_cfg=norm_cfg, act_cfg=act_cfg))
            if self.dropout > 0:
                layers.append(factory.dropout(self.dropout))
            width_in = self.channels
        self.layers = nn.Sequential(*layers)
        self.classifier = factory.conv(self.channels, num_classes, 1, bias=True)

    @property
    def receptive_field(self) -> Tuple[int, ...]:
        """Voxels per axis one output sees: ``1 + 2 * sum(dilations)`` (3^3 kernels)."""
        return tuple(1 + 2 * sum(d[axis] for d in self.dilations)
                     for axis in range(self.spatial_dims))

    def forward(self, x: Tensor) -> Tensor:
        """``(N, in_channels, *spatial)`` -> logits ``(N, num_classes, *spatial)``."""
        if x.dim() != self.spatial_dims + 2 or x.shape[1] != self.in_channels:
            raise ValueError(f'MeshNet expects (N, {self.in_channels}, *{self.spatial_dims} '
                             f'spatial dims), got {tuple(x.shape)}')
        return self.classifier(self.layers(x))
