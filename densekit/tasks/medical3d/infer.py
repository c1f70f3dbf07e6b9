"""``densekit infer`` for volumes: the ``'medical'`` inference handler (``.nii`` / ``.nii.gz``).

Per case: read the channels (nnU-Net ``case_0000`` / ``case_0001`` siblings are gathered; a
``_0001``+ file handed in on its own is skipped because its ``_0000`` file covers it), check
them, preprocess exactly as in training (the config's ``preprocessing`` and the checkpoint's
channel names), segment with sliding windows (config ``model.test_cfg``; a progress bar over
windows), map the labels back to the file grid and write ``<case>_seg.nii.gz`` with the input's
affine and header (uint8 / uint16).

With ``options.ensemble`` (``--ensemble CKPT ...``) the further checkpoints are built from the
same config and the softmax of all models is averaged window by window
(:func:`~.ensemble.predict_ensemble`). When the config names a ``plans_file`` whose
``postprocessing.keep_largest_component`` lists classes (decided from cross-validation), only
the largest connected component of each is kept (:mod:`~.postprocess`).
"""
from __future__ import annotations

import os.path as osp
from typing import Any, List, Optional

import numpy as np
import torch

from densekit.inference import Handler, InferOptions, UnreadableInput, register_handler
from densekit.tasks.medical3d.ensemble import predict_ensemble
from densekit.tasks.medical3d.nifti import (
    NIFTI_SUFFIXES,
    Case,
    UnreadableNifti,
    case_from_image,
    case_id,
    channel_files,
    labels_image,
    read_case,
    write_labels,
)
from densekit.tasks.medical3d.postprocess import keep_largest_component, load_postprocessing
from densekit.tasks.medical3d.preprocess import Preprocessor

__all__ = ['medical_handler']


def _channel_names(cfg: Any, model: torch.nn.Module) -> List[str]:
    prep = dict(cfg.get('preprocessing') or {})
    names = (model.dataset_meta or {}).get('channel_names') or prep.get('channel_names')
    if not names:
        in_channels = getattr(getattr(model, 'backbone', None), 'in_channels', 1)
        names = ['zscore'] * in_channels
    return list(names)


def _preprocessor(cfg: Any, model: torch.nn.Module) -> Preprocessor:
    prep = dict(cfg.get('preprocessing') or {})
    prep.pop('channel_names', None)
    return Preprocessor(_channel_names(cfg, model), **prep)


def medical_handler(cfg: Any, model: torch.nn.Module,
                    options: Optional[InferOptions] = None) -> Handler:
    """Handler factory for ``task = 'medical'`` configs (see the module docstring).

    One input is one case: a ``_0001``+ channel file is covered by its ``_0000`` file and is
    not counted on its own. A 4D file's 4th axis is taken as channels only when its intent
    code says so or ``options.channel_axis`` is given; a channel count that differs from the
    model's is an error naming the channels the model expects (``T2, T1``).
    """
    options = options or InferOptions()
    preprocessor = _preprocessor(cfg, model)
    expected = _channel_names(cfg, model)
    model.test_cfg['progress'] = options.progress
    members = [model]
    if options.ensemble:
        from densekit.inference import build_model
        device = next(model.parameters()).device
        members += [build_model(cfg, ckpt, str(device)) for ckpt in options.ensemble]
    keep_largest = load_postprocessing(cfg.get('plans_file'))

    def outputs(path: str) -> List[str]:
        try:
            first = channel_files(path)[0]
        except ValueError:  # badly numbered channels: reported when the case is read
            first = path
        if osp.abspath(first) != osp.abspath(path):
            return []  # a later channel: handled with its _0000 file
        return [f'{case_id(path)}_seg.nii.gz']

    def read(path: str) -> Case:
        paths = channel_files(path)
        try:
            case = read_case(paths, four_d_channels=False, channel_axis=options.channel_axis)
        except UnreadableNifti as err:
            raise UnreadableInput(str(err)) from err
        except ValueError as err:
            if 'not marked as channels' in str(err):
                raise ValueError(f'{err}; the model expects {len(expected)} channel(s): '
                                 f'{", ".join(expected)}') from None
            raise
        check_channels(case, path, f', files {", ".join(osp.basename(p) for p in paths)}')
        return case

    def check_channels(case: Case, name: str, files: str = '') -> None:
        if case.image.shape[0] != len(expected):
            raise ValueError(f'{name}: case has {case.image.shape[0]} channel(s) (shape '
                             f'{tuple(case.image.shape[1:])} per channel{files}); the model '
                             f'expects {len(expected)}: {", ".join(expected)}')

    def predict(cases: List[Case]) -> List[Any]:
        results = []
        device = next(model.parameters()).device
        for case in cases:
            image, _, meta = preprocessor(case)
            volume = torch.from_numpy(image).to(device)
            labels = predict_ensemble(members, volume) if len(members) > 1 \
                else model.predict_volume(volume)
            if keep_largest:
                labels = keep_largest_component(labels.cpu().numpy(), keep_largest)
            results.append(preprocessor.invert_labels(labels, meta))
        return results

    def write(path: str, case: Case, labels: Any, out_paths: List[str]) -> None:
        write_labels(labels, case.affine, case.header, out_paths[0])

    def from_input(source: Any) -> Case:
        spacing = preprocessor.target_spacing
        case = case_from_image(source, channel_axis=options.channel_axis,
                               spacing=None if spacing is None else spacing[::-1])
        check_channels(case, '<input>')
        return case

    def result(source: Any, case: Case, labels: Any) -> Any:
        labels = np.asarray(labels)
        if isinstance(source, np.ndarray):
            return labels
        return labels_image(labels, case.affine, case.header)

    return Handler(NIFTI_SUFFIXES, outputs, read, predict, write, from_input=from_input,
                   result=result)


register_handler('medical', medical_handler)
