"""Task families: segmentation, detection, restoration and medical 3D segmentation."""
from densekit.tasks import detection, segmentation  # noqa: F401
