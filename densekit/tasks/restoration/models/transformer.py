"""Old location of :mod:`densekit.blocks.sparse_transformer` (and of ``LayerNorm2d``, now
:class:`densekit.layers.ChannelLayerNorm` with ``eps=1e-5``)."""
from densekit.blocks.sparse_transformer import MSFN, TKSA, TOPK_FRACTIONS, SparseBlock
from densekit.tasks.restoration.models import LayerNorm2d

__all__ = ['LayerNorm2d', 'TKSA', 'MSFN', 'SparseBlock', 'TOPK_FRACTIONS']
