"""Reusable building blocks from the seed papers (registered under the densekit scope).

* :class:`DCLSConv` - dilated convolution with learnable spacings (2D / 3D);
* :class:`FADConv` - frequency-adaptive dilated convolution (2D);
* :class:`PConv` - FasterNet's partial convolution;
* :class:`SPDConv` - space-to-depth + non-strided conv (2D / 3D);
* :class:`scSE`, :class:`ECA` - channel / spatial recalibration (2D / 3D);
* :class:`EDSRResBlock` - EDSR's residual block without normalisation;
* :class:`Shift8`, :class:`ShiftBlock` - SCNet's parameter-free shift and its 1x1 block;
* :class:`TKSA`, :class:`MSFN`, :class:`SparseBlock` - DRSformer's sparse transformer block and
  :class:`MEFC`, its mixture-of-experts feature compensator;
* :class:`DilatedReparamBlock` - UniRepLKNet's re-parameterisable large-kernel block (2D / 3D)
  and :class:`LargeKernelResBlock`, a residual block built on it;
* :class:`ConvNormResBlock`, :class:`UpConcat` - STU-Net's residual block and upsampling (2D / 3D);
* :class:`InvertedBottleneck`, :class:`ReversibleCoupling`, :class:`ReversibleSequence` -
  reversible residual blocks that train without storing activations;
* :func:`set_convbn_mode` - train / tune / deploy modes of conv + BatchNorm pairs.
"""
from densekit.blocks.convbn import CONVBN_MODES, set_convbn_mode
from densekit.blocks.dcls import DCLSConv
from densekit.blocks.edsr_block import EDSRResBlock
from densekit.blocks.fadc import FADConv, FreqSelect, frequency_bands
from densekit.blocks.mefc import EXPERTS, MEFC, build_expert
from densekit.blocks.pconv import PConv
from densekit.blocks.recalibration import ECA, ChannelSE, SpatialSE, eca_kernel_size, scSE
from densekit.blocks.reparam import (
    REPARAM_BRANCHES,
    DilatedReparamBlock,
    LargeKernelResBlock,
    dilate_kernel,
    pad_kernel,
)
from densekit.blocks.residual import ConvNormResBlock, UpConcat
from densekit.blocks.reversible import InvertedBottleneck, ReversibleCoupling, ReversibleSequence
from densekit.blocks.shift import Shift8, ShiftBlock
from densekit.blocks.sparse_transformer import MSFN, TKSA, SparseBlock
from densekit.blocks.spd import SPDConv, depth_to_space, space_to_depth

__all__ = [
    'CONVBN_MODES', 'set_convbn_mode', 'DCLSConv', 'FADConv', 'FreqSelect', 'frequency_bands',
    'PConv', 'ECA', 'ChannelSE', 'SpatialSE', 'eca_kernel_size', 'scSE', 'REPARAM_BRANCHES',
    'DilatedReparamBlock', 'LargeKernelResBlock', 'dilate_kernel', 'pad_kernel', 'SPDConv',
    'depth_to_space', 'space_to_depth', 'EDSRResBlock', 'EXPERTS', 'MEFC', 'build_expert',
    'Shift8', 'ShiftBlock', 'MSFN', 'TKSA', 'SparseBlock', 'ConvNormResBlock', 'UpConcat',
    'InvertedBottleneck', 'ReversibleCoupling', 'ReversibleSequence',
]
