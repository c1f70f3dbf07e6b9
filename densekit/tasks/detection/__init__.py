"""Object detection on mmdet: validated COCO datasets and built-in COCO-format data."""
from densekit.tasks.detection.dataset import CheckedCocoDataset, ShapesCocoDataset
from densekit.tasks.detection.synthetic import DET_CLASSES, generate_detection_dataset

__all__ = ['CheckedCocoDataset', 'ShapesCocoDataset', 'generate_detection_dataset',
           'DET_CLASSES']
