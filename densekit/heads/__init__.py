"""densekit heads (registered under the densekit scope)."""
from densekit.heads.aspp_head import ASPPHead

__all__ = ['ASPPHead']
