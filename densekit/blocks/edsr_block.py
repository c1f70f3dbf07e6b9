"""EDSR's residual block without normalisation (Lim et al., 2017), used by the EDSR / MDSR
bodies and the deraining residual U-Net."""
from __future__ import annotations

from torch import Tensor, nn

from densekit.errors import positive_int
from densekit.layers import LayerFactory

__all__ = ['EDSRResBlock']

_LAYERS = LayerFactory(2)


class EDSRResBlock(nn.Module):
    """EDSR residual block without normalisation: ``x + res_scale * conv(relu(conv(x)))``.

    Args:
        channels: Feature channels.
        res_scale: Residual scaling (0.1 stabilises wide EDSR).
        kernel_size: Odd kernel size (MDSR's scale-specific blocks use 5).

    Example:
        >>> EDSRResBlock(16)(torch.randn(1, 16, 8, 8)).shape
        torch.Size([1, 16, 8, 8])
    """

    def __init__(self, channels: int, res_scale: float = 1.0, kernel_size: int = 3) -> None:
        super().__init__()
        positive_int(channels, 'channels')
        if kernel_size % 2 == 0 or kernel_size < 1:
            raise ValueError(f'kernel_size must be a positive odd int, got {kernel_size!r}')
        pad = kernel_size // 2
        self.conv1 = _LAYERS.conv(channels, channels, kernel_size, padding=pad)
        self.conv2 = _LAYERS.conv(channels, channels, kernel_size, padding=pad)
        self.act = nn.ReLU(inplace=True)
        self.res_scale = float(res_scale)

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        return x + self.conv2(self.act(self.conv1(x))) * self.res_scale
