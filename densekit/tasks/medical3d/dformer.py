"""Old import path of the D-Former encoder (now :mod:`densekit.backbones.dformer`)."""
from densekit.backbones.dformer import (
    DFORMER_ARCHS,
    DFormerBlock,
    DFormerEncoder,
    merge_groups,
    partition_groups,
)

__all__ = ['DFORMER_ARCHS', 'DFormerEncoder', 'DFormerBlock', 'partition_groups', 'merge_groups']
