"""Old location of :mod:`densekit.backbones.piip_interaction` (the PIIP backbone's cross-branch
interaction; it is part of the backbone, not a neck)."""
from densekit.backbones.piip_interaction import (
    ConvFFN,
    PIIPInjector,
    PIIPInteraction,
    check_interaction_width,
    reference_points,
)

__all__ = ['ConvFFN', 'PIIPInjector', 'PIIPInteraction', 'check_interaction_width',
           'reference_points']
