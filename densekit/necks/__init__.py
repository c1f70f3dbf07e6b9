"""densekit necks (registered under the densekit scope): FPN, ASPP, JPU.

All are dimension-generic (``spatial_dims=2`` for NCHW, 3 for NCDHW), accept their OpenMMLab
peer's arguments and load the peer's checkpoints (see :mod:`densekit.necks.convert`).
"""
from densekit.necks.aspp import ASPP
from densekit.necks.convert import convert_state_dict
from densekit.necks.fpn import FPN
from densekit.necks.jpu import JPU

__all__ = ['ASPP', 'FPN', 'JPU', 'convert_state_dict']
from densekit.necks.rcnet import RCNet  # noqa: F401,E402
from densekit.necks.sepc import SEPC  # noqa: F401,E402
