"""densekit heads (registered under the densekit scope)."""
from densekit.heads.aspp_head import ASPPHead
from densekit.heads.seg_heads import DepthwiseSeparableASPPHead, DUCHead, FCNHead, FPNHead

__all__ = ['ASPPHead', 'DepthwiseSeparableASPPHead', 'DUCHead', 'FCNHead', 'FPNHead']
