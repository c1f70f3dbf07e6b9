"""``densekit infer`` for volumes: the ``'medical'`` inference handler (``.nii`` / ``.nii.gz``).

Per case: read the channels (nnU-Net ``case_0000`` / ``case_0001`` siblings are gathered; a
``_0001``+ file handed in on its own is skipped because its ``_0000`` file covers it), check
them, preprocess exactly as in training (the config's ``preprocessing`` and the checkpoint's
channel names), segment with sliding windows (config ``model.test_cfg``; a progress bar over
windows), map the labels back to the file grid and write ``<case>_seg.nii.gz`` with the input's
affine and header (uint8 / uint16).
"""
from __future__ import annotations

import os.path as osp
from typing import Any, List

import torch

from densekit.fileio import refuse_overwrite
from densekit.inference import Handler, UnreadableInput, register_handler
from densekit.tasks.medical3d.nifti import (
    NIFTI_SUFFIXES,
    UnreadableNifti,
    case_id,
    channel_files,
    read_case,
    write_labels,
)
from densekit.tasks.medical3d.preprocess import Preprocessor

__all__ = ['medical_handler']


def _preprocessor(cfg: Any, model: torch.nn.Module) -> Preprocessor:
    prep = dict(cfg.get('preprocessing') or {})
    names = prep.pop('channel_names', None) or (model.dataset_meta or {}).get('channel_names')
    if not names:
        in_channels = getattr(getattr(model, 'backbone', None), 'in_channels', 1)
        names = ['zscore'] * in_channels
    return Preprocessor(list(names), **prep)


def medical_handler(cfg: Any, model: torch.nn.Module) -> Handler:
    """Handler factory for ``task = 'medical'`` configs (see the module docstring)."""
    preprocessor = _preprocessor(cfg, model)
    model.test_cfg['progress'] = True

    def handle(path: str, out_dir: str) -> List[str]:
        paths = channel_files(path)
        if osp.abspath(paths[0]) != osp.abspath(path):
            return []  # a later channel: handled with its _0000 file
        try:
            case = read_case(paths)
        except UnreadableNifti as err:
            raise UnreadableInput(str(err)) from err
        image, _, meta = preprocessor(case)
        device = next(model.parameters()).device
        labels = model.predict_volume(torch.from_numpy(image).to(device))
        out = preprocessor.invert_labels(labels, meta)
        target = osp.join(out_dir, f'{case_id(path)}_seg.nii.gz')
        refuse_overwrite(target, list(paths))
        return [write_labels(out, case.affine, case.header, target)]

    return Handler(NIFTI_SUFFIXES, handle)


register_handler('medical', medical_handler)
