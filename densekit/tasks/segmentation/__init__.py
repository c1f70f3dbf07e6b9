"""Semantic segmentation on mmseg: datasets, built-in data and transforms."""
from densekit.tasks.segmentation.dataset import ShapesDataset
from densekit.tasks.segmentation.synthetic import CLASSES, PALETTE, generate_shapes_dataset
from densekit.tasks.segmentation.transforms import CheckLabelSize

__all__ = ['ShapesDataset', 'CheckLabelSize', 'generate_shapes_dataset', 'CLASSES', 'PALETTE']
