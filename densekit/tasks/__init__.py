"""Task families: segmentation, detection, restoration and medical 3D segmentation."""
from densekit.tasks import (  # noqa: F401
    detection,
    medical3d,  # noqa: F401
    restoration,
    segmentation,
)
