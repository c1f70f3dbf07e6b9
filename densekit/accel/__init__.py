"""densekit's execution layer: every CPU fast path, and the one dispatcher that allows it.

Models and :class:`~densekit.layers.ConvNormAct` express the plain computation; where an exact
faster algorithm exists they ask :func:`use` (``densekit.accel.use('tap_skip', x, w)``), which
answers per call from the device type and dtype, the autocast state, tracing / ONNX export /
``torch.compile`` and the user switch (see :mod:`~densekit.accel.policy`). Default policy: the
fast paths on CPU float32, the plain PyTorch op everywhere else.

The switch::

    densekit.accel.set_fast_paths(False)        # process wide
    with densekit.accel.fast_paths(False):      # one block, this thread
        ...
    DENSEKIT_FAST_PATHS=0 python train.py       # environment, read at import

Per-model: :func:`~densekit.layers.set_fast_eval` (``model``, False) turns them off for the
modules of one model only.

Parts:

* :mod:`~densekit.accel.policy` - the dispatcher and the switch;
* :mod:`~densekit.accel.conv` - conv algorithm choice (plain / polyphase / tap skipping);
* :mod:`~densekit.accel.taps` - convs that skip the taps falling in the zero padding;
* :mod:`~densekit.accel.polyphase` - dilated depthwise convs on polyphase components;
* :mod:`~densekit.accel.volumetric` - the 3D (medical) inference fast path.
"""
from densekit.accel.policy import (
    ENV_VAR,
    PATHS,
    fast_paths,
    fast_paths_enabled,
    is_capturing,
    set_fast_paths,
    use,
)

__all__ = ['ENV_VAR', 'PATHS', 'fast_paths', 'fast_paths_enabled', 'is_capturing',
           'set_fast_paths', 'use']
