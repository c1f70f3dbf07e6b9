"""densekit: dense prediction and image restoration on PyTorch and OpenMMLab.

A model is a shared **backbone**, a **neck** (FPN, ASPP, JPU, SEPC, RCNet) and a task
**head**, for five task families (segmentation, detection, super-resolution, deraining, medical
3D segmentation). Everything is registered in the ``densekit`` registry scope.

Importing densekit registers every module, makes mmengine's checkpoint loading safe under
``torch.load(weights_only=True)`` and makes its local file writes atomic.
"""
# Imported for their side effects: registration, safe checkpoint loading, atomic writes.
from densekit import (  # noqa: F401
    amp,
    augment,
    backbones,
    blocks,
    checkpoint,
    distributed,
    fileio,
    heads,
    hooks,
    necks,
    registry,
    tasks,
    visualization,
)

__version__ = '0.1.0'


def __getattr__(name: str) -> object:
    """``densekit.Predictor`` is imported on first use (it pulls in the inference stack)."""
    if name == 'Predictor':
        from densekit.predictor import Predictor
        return Predictor
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
