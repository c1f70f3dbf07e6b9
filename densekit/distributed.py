"""torch.distributed set-up through mmengine, made to work on CPU-only machines (gloo).

mmengine's launchers call ``torch.cuda.set_device`` and wrap models in DDP with
``device_ids=[LOCAL_RANK]``; both fail without a GPU. densekit keeps mmengine in charge on GPUs
(nccl) and, on CPU, initialises the gloo process group first (mmengine then skips its own
initialisation) and wraps the model with :class:`DeviceAwareDDP`.
"""
from __future__ import annotations

import os
import subprocess
from typing import Any

import torch
import torch.distributed as torch_dist
from mmengine.model import MMDistributedDataParallel

from densekit.registry import MODEL_WRAPPERS


@MODEL_WRAPPERS.register_module()
class DeviceAwareDDP(MMDistributedDataParallel):
    """mmengine's DDP wrapper that drops ``device_ids`` for CPU modules (gloo)."""

    def __init__(self, module: torch.nn.Module, device_ids: Any = None,
                 **kwargs: Any) -> None:
        on_cpu = all(p.device.type == 'cpu' for p in module.parameters())
        super().__init__(module=module, device_ids=None if on_cpu else device_ids, **kwargs)


def _slurm_env_to_torch_env(port: int) -> None:
    """Fill RANK/WORLD_SIZE/LOCAL_RANK/MASTER_* from SLURM variables (as mmengine does)."""
    os.environ.setdefault('RANK', os.environ['SLURM_PROCID'])
    os.environ.setdefault('WORLD_SIZE', os.environ['SLURM_NTASKS'])
    os.environ.setdefault('LOCAL_RANK', os.environ.get('SLURM_LOCALID', '0'))
    os.environ.setdefault('MASTER_PORT', str(port))
    if 'MASTER_ADDR' not in os.environ:
        nodes = os.environ['SLURM_NODELIST']
        first = subprocess.check_output(['scontrol', 'show', 'hostnames', nodes], text=True)
        os.environ['MASTER_ADDR'] = first.split()[0]


def prepare_distributed(cfg: Any, launcher: str) -> None:
    """Adjust ``cfg`` (and, on CPU, initialise gloo) before the Runner is built.

    Args:
        cfg: The mmengine Config being launched; edited in place.
        launcher: ``'none'``, ``'pytorch'`` (torchrun) or ``'slurm'``.

    Raises:
        ValueError: For an unknown launcher name.
    """
    if launcher not in ('none', 'pytorch', 'slurm'):
        raise ValueError(f"launcher must be 'none', 'pytorch' or 'slurm', got {launcher!r}")
    cfg.launcher = launcher
    if launcher == 'none' or torch.cuda.is_available():
        return
    env_cfg = cfg.setdefault('env_cfg', {})
    env_cfg.setdefault('dist_cfg', {})['backend'] = 'gloo'
    if cfg.get('model_wrapper_cfg') is None:
        cfg.model_wrapper_cfg = dict(type='densekit.DeviceAwareDDP')
    if launcher == 'slurm':
        _slurm_env_to_torch_env(int(env_cfg.get('dist_cfg', {}).get('port', 29500)))
    if not torch_dist.is_initialized():
        torch_dist.init_process_group(backend='gloo')
