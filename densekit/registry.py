"""densekit's registry nodes: children of mmengine's root registries, in the ``densekit`` scope.

Every registered densekit class lives in one of these registries. Because each is a child of
the matching mmengine root, configs cross scopes in both directions:

* an mmseg- or mmdet-scoped config builds ``type='densekit.FPN'``;
* a densekit-scoped config (``default_scope='densekit'``) builds ``type='mmseg.EncoderDecoder'``
  or ``type='mmdet.RetinaHead'``.

The ``locations`` make a lookup import the whole package first, so importing this module (which
mmengine does on its own when it meets a ``densekit.`` prefix) is enough to register everything.

**The scope follows the prefix.** Stock mmengine builds ``type='mmseg.EncoderDecoder'`` while
the default scope is still the caller's, so the defaults *inside* that module (an unprefixed
``CrossEntropyLoss``, ``BN``, ...) are looked up in the wrong registry and fail, unless the
config adds ``_scope_='mmseg'`` by hand. densekit wraps the build functions of the registry tree
so that a prefixed type is built in its own scope, as if ``_scope_`` had been written, and an
unprefixed name the default scope cannot resolve is built in the scope of the registry whose
``build`` was called (so mmseg/mmdet modules constructed directly keep working while densekit
is the default scope). An explicit ``_scope_`` still wins; names the default scope resolves
behave exactly as before.

**``in_channels='auto'``.** The same wrapper fills a neck's or head's ``in_channels='auto'``
from the backbone of the model being built (its shape contract, or a probe forward pass), so
every wrapper, mmseg's and mmdet's included, accepts it.
"""
import functools
from typing import Any, Callable

from mmengine.registry import DATA_SAMPLERS as ROOT_DATA_SAMPLERS
from mmengine.registry import DATASETS as ROOT_DATASETS
from mmengine.registry import EVALUATOR as ROOT_EVALUATOR
from mmengine.registry import FUNCTIONS as ROOT_FUNCTIONS
from mmengine.registry import HOOKS as ROOT_HOOKS
from mmengine.registry import INFERENCERS as ROOT_INFERENCERS
from mmengine.registry import LOG_PROCESSORS as ROOT_LOG_PROCESSORS
from mmengine.registry import LOOPS as ROOT_LOOPS
from mmengine.registry import METRICS as ROOT_METRICS
from mmengine.registry import MODEL_WRAPPERS as ROOT_MODEL_WRAPPERS
from mmengine.registry import MODELS as ROOT_MODELS
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS as ROOT_OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.registry import OPTIM_WRAPPERS as ROOT_OPTIM_WRAPPERS
from mmengine.registry import OPTIMIZERS as ROOT_OPTIMIZERS
from mmengine.registry import PARAM_SCHEDULERS as ROOT_PARAM_SCHEDULERS
from mmengine.registry import RUNNER_CONSTRUCTORS as ROOT_RUNNER_CONSTRUCTORS
from mmengine.registry import RUNNERS as ROOT_RUNNERS
from mmengine.registry import TASK_UTILS as ROOT_TASK_UTILS
from mmengine.registry import TRANSFORMS as ROOT_TRANSFORMS
from mmengine.registry import VISBACKENDS as ROOT_VISBACKENDS
from mmengine.registry import VISUALIZERS as ROOT_VISUALIZERS
from mmengine.registry import WEIGHT_INITIALIZERS as ROOT_WEIGHT_INITIALIZERS
from mmengine.registry import DefaultScope, Registry

SCOPE = 'densekit'


def _build_scope(obj_type: str, registry: Any) -> Any:
    """The scope to build ``obj_type`` in, or None to leave mmengine's choice alone.

    * ``'mmseg.X'`` is built in ``mmseg`` whatever the default scope;
    * an unprefixed name that the default scope's registry cannot resolve, but the registry
      ``build`` was called on can (``mmseg.registry.MODELS.build(dict(type=
      'CrossEntropyLoss'))`` inside an mmseg module while densekit is the default scope), is
      built in that registry's scope.
    """
    prefix, _ = Registry.split_scope_key(obj_type)
    current = DefaultScope.get_current_instance()
    if prefix is not None:
        return prefix if current is None or current.scope_name != prefix else None
    if current is None or not isinstance(registry, Registry) or \
            current.scope_name == registry.scope:
        return None
    default = registry._get_root_registry()._search_child(current.scope_name)
    if default is not None and default.get(obj_type) is None and \
            registry.get(obj_type) is not None:
        return registry.scope
    return None


def scope_follows_prefix(build_func: Callable) -> Callable:
    """Wrap a registry build function so ``type='scope.Name'`` is built inside ``scope``."""
    if getattr(build_func, '_densekit_scope_follows_prefix', False):
        return build_func

    @functools.wraps(build_func)
    def build(cfg: Any, *args: Any, **kwargs: Any) -> Any:
        obj_type = cfg.get('type') if isinstance(cfg, dict) else None
        if isinstance(obj_type, str) and '_scope_' not in cfg:
            scope = _build_scope(obj_type, kwargs.get('registry'))
            if scope is not None:
                cfg = cfg.copy()
                cfg['_scope_'] = scope
        if _wants_auto(cfg):
            cfg = _fill_auto(cfg, kwargs.get('registry'))
        return build_func(cfg, *args, **kwargs)

    build._densekit_scope_follows_prefix = True  # type: ignore[attr-defined]
    return build


def _wants_auto(cfg: Any) -> bool:
    from densekit.backbones.contract import wants_auto_channels
    return wants_auto_channels(cfg)


def _fill_auto(cfg: Any, registry: Any) -> Any:
    """Fill ``in_channels='auto'`` of a model config's neck and heads (see
    :func:`densekit.backbones.contract.fill_auto_channels`), building the parts in the scope
    the model itself is built in."""
    from densekit.backbones.contract import fill_auto_channels
    scope = cfg.get('_scope_')
    if scope is not None and isinstance(registry, Registry):
        with registry.switch_scope_and_registry(scope) as scoped:
            return fill_auto_channels(cfg, scoped)
    return fill_auto_channels(cfg, registry)


def _patch_tree(node: Registry) -> None:
    node.build_func = scope_follows_prefix(node.build_func)
    for child in node.children.values():
        _patch_tree(child)


def _install_scope_follows_prefix() -> None:
    import mmengine.registry.root as roots

    for value in vars(roots).values():
        if isinstance(value, Registry):
            _patch_tree(value)


_install_scope_follows_prefix()
_LOCATIONS = ['densekit']


def _child(name: str, parent: Registry) -> Registry:
    return Registry(name, parent=parent, scope=SCOPE, locations=_LOCATIONS)


RUNNERS = _child('runner', ROOT_RUNNERS)
RUNNER_CONSTRUCTORS = _child('runner constructor', ROOT_RUNNER_CONSTRUCTORS)
LOOPS = _child('loop', ROOT_LOOPS)
HOOKS = _child('hook', ROOT_HOOKS)
DATASETS = _child('dataset', ROOT_DATASETS)
DATA_SAMPLERS = _child('data sampler', ROOT_DATA_SAMPLERS)
TRANSFORMS = _child('transform', ROOT_TRANSFORMS)
MODELS = _child('model', ROOT_MODELS)
MODEL_WRAPPERS = _child('model wrapper', ROOT_MODEL_WRAPPERS)
WEIGHT_INITIALIZERS = _child('weight initializer', ROOT_WEIGHT_INITIALIZERS)
OPTIMIZERS = _child('optimizer', ROOT_OPTIMIZERS)
OPTIM_WRAPPERS = _child('optim wrapper', ROOT_OPTIM_WRAPPERS)
OPTIM_WRAPPER_CONSTRUCTORS = _child('optimizer wrapper constructor',
                                    ROOT_OPTIM_WRAPPER_CONSTRUCTORS)
PARAM_SCHEDULERS = _child('parameter scheduler', ROOT_PARAM_SCHEDULERS)
METRICS = _child('metric', ROOT_METRICS)
EVALUATOR = _child('evaluator', ROOT_EVALUATOR)
TASK_UTILS = _child('task util', ROOT_TASK_UTILS)
VISUALIZERS = _child('visualizer', ROOT_VISUALIZERS)
VISBACKENDS = _child('vis_backend', ROOT_VISBACKENDS)
LOG_PROCESSORS = _child('log_processor', ROOT_LOG_PROCESSORS)
INFERENCERS = _child('inferencer', ROOT_INFERENCERS)
FUNCTIONS = _child('function', ROOT_FUNCTIONS)

__all__ = [
    'SCOPE', 'RUNNERS', 'RUNNER_CONSTRUCTORS', 'LOOPS', 'HOOKS', 'DATASETS', 'DATA_SAMPLERS',
    'TRANSFORMS', 'MODELS', 'MODEL_WRAPPERS', 'WEIGHT_INITIALIZERS', 'OPTIMIZERS',
    'OPTIM_WRAPPERS', 'OPTIM_WRAPPER_CONSTRUCTORS', 'PARAM_SCHEDULERS', 'METRICS', 'EVALUATOR',
    'TASK_UTILS', 'VISUALIZERS', 'VISBACKENDS', 'LOG_PROCESSORS', 'INFERENCERS', 'FUNCTIONS',
]
