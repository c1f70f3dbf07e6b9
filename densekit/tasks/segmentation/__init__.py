"""Semantic segmentation on mmseg: datasets, built-in data and transforms."""
from densekit.tasks.segmentation.dataset import ShapesDataset
from densekit.tasks.segmentation.synthetic import CLASSES, PALETTE, generate_shapes_dataset

__all__ = ['ShapesDataset', 'generate_shapes_dataset', 'CLASSES', 'PALETTE']
