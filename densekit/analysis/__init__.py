"""The everyday tools behind ``densekit env / flops / plot-log / analyze / browse`` and the demo
report.

Each submodule is imported only by the command that needs it, so ``densekit --help`` stays
light:

* :mod:`~densekit.analysis.env` - the environment report for bug reports;
* :mod:`~densekit.analysis.flops` - parameters and FLOPs per module (mmengine's analyzer);
* :mod:`~densekit.analysis.curves` - training curves from mmengine's ``scalars.json``;
* :mod:`~densekit.analysis.evaluate` - per-class / per-case / per-image analysis of a checkpoint;
* :mod:`~densekit.analysis.browse` - pictures of samples as the training pipeline makes them;
* :mod:`~densekit.analysis.drawing` - the shared drawing helpers (legends, boxes, crops);
* :mod:`~densekit.analysis.report` - the self-contained HTML page of the demo.
"""
