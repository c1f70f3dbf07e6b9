"""Load OpenMMLab peer checkpoints into densekit necks and heads without a conversion script.

densekit modules keep mmcv ``ConvModule`` key names, so most peer keys already match (mmdet
``FPN``: all of them). The remaining differences are renames listed in :data:`RULES`; modules
that inherit :class:`PeerCheckpointMixin` apply their rules in a ``load_state_dict`` pre-hook,
so ``densekit_module.load_state_dict(peer_module.state_dict())`` just works - also through
mmengine's ``load_checkpoint`` and with the module nested anywhere in a bigger model. The rules
only touch peer-style keys, so densekit's own checkpoints load unchanged.
"""
from __future__ import annotations

import re
from collections import OrderedDict
from typing import Any, Dict, List, Mapping, Optional, Tuple

__all__ = ['RULES', 'convert_state_dict', 'PeerCheckpointMixin']

# (pattern on the key relative to the module, replacement or None to drop the key)
Rule = Tuple[str, Optional[str]]
RULES: Dict[str, List[Rule]] = {
    # mmdet.models.necks.FPN: identical keys.
    'mmdet.FPN': [],
    # mmseg.models.necks.JPU wraps every ConvModule in an nn.Sequential of one.
    'mmseg.JPU': [(r'^(conv_layers|dilation_layers)\.(\d+)\.0\.', r'\1.\2.')],
    # mmseg ASPPHead / DepthwiseSeparableASPPHead -> densekit.ASPP neck: the image pool is
    # Sequential(pool, ConvModule); the classifier and DeepLabv3+ decoder are not the neck's.
    'mmseg.ASPPHead->ASPP': [(r'^image_pool\.1\.', 'image_pool.'),
                             (r'^(conv_seg|c1_bottleneck|sep_bottleneck)\.', None)],
    # mmseg ASPPHead -> densekit.ASPPHead, whose ASPP lives in the ``aspp`` submodule.
    'mmseg.ASPPHead': [(r'^image_pool\.1\.', 'aspp.image_pool.'),
                       (r'^(aspp_modules|bottleneck)\.', r'aspp.\1.')],
}


def convert_state_dict(state_dict: Mapping[str, Any], rules: str,
                       prefix: str = '') -> OrderedDict[str, Any]:
    """Rename (or drop) the peer keys under ``prefix`` following ``RULES[rules]``.

    Args:
        state_dict: A peer (or densekit) state dict.
        rules: Key of :data:`RULES`, e.g. ``'mmseg.JPU'``.
        prefix: Only keys starting with it are converted (the rest is kept as is).

    Returns:
        A new ordered dict with densekit key names.

    Example:
        >>> convert_state_dict({'conv_layers.0.0.conv.weight': 1}, 'mmseg.JPU')
        OrderedDict({'conv_layers.0.conv.weight': 1})
    """
    if rules not in RULES:
        raise ValueError(f'rules must be one of {sorted(RULES)}, got {rules!r}')
    compiled = [(re.compile(p), r) for p, r in RULES[rules]]
    out: OrderedDict[str, Any] = OrderedDict()
    for key, value in state_dict.items():
        if not key.startswith(prefix):
            out[key] = value
            continue
        local = key[len(prefix):]
        for pattern, repl in compiled:
            if pattern.search(local):
                local = None if repl is None else pattern.sub(repl, local, count=1)
                break
        if local is not None:
            out[prefix + local] = value
    return out


class PeerCheckpointMixin:
    """Mixin for ``nn.Module`` subclasses: convert peer keys on every ``load_state_dict``.

    Subclasses set ``peer_rules`` to a key of :data:`RULES` and must call ``super().__init__``
    before loading anything.
    """

    peer_rules: str = ''

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.peer_rules and RULES[self.peer_rules]:
            self._register_load_state_dict_pre_hook(self._convert_peer_keys)

    def _convert_peer_keys(self, state_dict: Dict[str, Any], prefix: str,
                           *args: Any) -> None:
        converted = convert_state_dict(state_dict, self.peer_rules, prefix)
        if list(converted) != list(state_dict):
            state_dict.clear()
            state_dict.update(converted)
