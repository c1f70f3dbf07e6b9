"""Where the restoration networks live: bodies in ``densekit.backbones``, reconstruction heads in
``densekit.heads``, their blocks in ``densekit.blocks``, PIIP's interaction in the backbone
package. The old import paths keep working, registered names and state-dict keys are unchanged,
and the moved code builds its convolutions with the layer factory."""
from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

import densekit  # noqa: F401  (registers everything)
from densekit.layers import ChannelLayerNorm
from densekit.registry import MODELS
from tests.conftest import REPO

# (new module, public names it defines)
NEW_HOMES = {
    'densekit.backbones.carn': ['CARNBody'],
    'densekit.backbones.drsformer': ['DRSformer'],
    'densekit.backbones.edsr': ['EDSRBody'],
    'densekit.backbones.fsrcnn': ['FSRCNNBody'],
    'densekit.backbones.resunet': ['ResUNet'],
    'densekit.backbones.scnet': ['SCNetBody'],
    'densekit.backbones.piip_interaction': ['PIIPInjector', 'PIIPInteraction', 'ConvFFN'],
    'densekit.heads.reconstruction': ['PixelShuffleUpsampler', 'PixelShuffleHead', 'DeconvHead',
                                      'ReconstructionHead', 'upsample_image', 'DIV2K_MEAN'],
    'densekit.heads.shift_head': ['ShiftUpsampleHead'],
    'densekit.blocks.edsr_block': ['EDSRResBlock'],
    'densekit.blocks.mefc': ['MEFC', 'EXPERTS', 'build_expert'],
    'densekit.blocks.shift': ['Shift8', 'ShiftBlock'],
    'densekit.blocks.sparse_transformer': ['TKSA', 'MSFN', 'SparseBlock'],
}

# old path -> {old name: (new module, new name)}
OLD_PATHS = {
    'densekit.tasks.restoration.models': {
        'CARNBody': ('densekit.backbones.carn', 'CARNBody'),
        'DRSformer': ('densekit.backbones.drsformer', 'DRSformer'),
        'EDSRBody': ('densekit.backbones.edsr', 'EDSRBody'),
        'FSRCNNBody': ('densekit.backbones.fsrcnn', 'FSRCNNBody'),
        'ResUNet': ('densekit.backbones.resunet', 'ResUNet'),
        'SCNetBody': ('densekit.backbones.scnet', 'SCNetBody'),
        'ResBlock': ('densekit.blocks.edsr_block', 'EDSRResBlock'),
        'MEFC': ('densekit.blocks.mefc', 'MEFC'),
        'Shift8': ('densekit.blocks.shift', 'Shift8'),
        'TKSA': ('densekit.blocks.sparse_transformer', 'TKSA'),
        'MSFN': ('densekit.blocks.sparse_transformer', 'MSFN'),
        'SparseBlock': ('densekit.blocks.sparse_transformer', 'SparseBlock'),
        'DIV2K_MEAN': ('densekit.heads.reconstruction', 'DIV2K_MEAN'),
        'PixelShuffleUpsampler': ('densekit.heads.reconstruction', 'PixelShuffleUpsampler'),
        'PixelShuffleHead': ('densekit.heads.reconstruction', 'PixelShuffleHead'),
        'DeconvHead': ('densekit.heads.reconstruction', 'DeconvHead'),
        'ReconstructionHead': ('densekit.heads.reconstruction', 'ReconstructionHead'),
        'ShiftUpsampleHead': ('densekit.heads.shift_head', 'ShiftUpsampleHead'),
    },
    'densekit.tasks.restoration.models.common': {
        'ResBlock': ('densekit.blocks.edsr_block', 'EDSRResBlock'),
        'PixelShuffleHead': ('densekit.heads.reconstruction', 'PixelShuffleHead'),
        'check_scale': ('densekit.heads.reconstruction', 'check_scale'),
        'check_positive': ('densekit.heads.reconstruction', 'check_positive'),
        'upsample_image': ('densekit.heads.reconstruction', 'upsample_image'),
    },
    'densekit.tasks.restoration.models.carn': {'CARNBody': ('densekit.backbones.carn',
                                                            'CARNBody')},
    'densekit.tasks.restoration.models.edsr': {'EDSRBody': ('densekit.backbones.edsr',
                                                            'EDSRBody')},
    'densekit.tasks.restoration.models.fsrcnn': {'FSRCNNBody': ('densekit.backbones.fsrcnn',
                                                                'FSRCNNBody')},
    'densekit.tasks.restoration.models.resunet': {'ResUNet': ('densekit.backbones.resunet',
                                                              'ResUNet')},
    'densekit.tasks.restoration.models.drsformer': {'DRSformer': ('densekit.backbones.drsformer',
                                                                  'DRSformer')},
    'densekit.tasks.restoration.models.scnet': {
        'SCNetBody': ('densekit.backbones.scnet', 'SCNetBody'),
        'Shift8': ('densekit.blocks.shift', 'Shift8'),
        'ShiftUpsampleHead': ('densekit.heads.shift_head', 'ShiftUpsampleHead'),
    },
    'densekit.tasks.restoration.models.mefc': {
        'MEFC': ('densekit.blocks.mefc', 'MEFC'),
        'build_expert': ('densekit.blocks.mefc', 'build_expert'),
    },
    'densekit.tasks.restoration.models.transformer': {
        'TKSA': ('densekit.blocks.sparse_transformer', 'TKSA'),
        'SparseBlock': ('densekit.blocks.sparse_transformer', 'SparseBlock'),
    },
    'densekit.necks.piip_interaction': {
        'PIIPInjector': ('densekit.backbones.piip_interaction', 'PIIPInjector'),
        'PIIPInteraction': ('densekit.backbones.piip_interaction', 'PIIPInteraction'),
        'reference_points': ('densekit.backbones.piip_interaction', 'reference_points'),
    },
}

# registered name -> module that must define it now
REGISTERED = {
    'CARNBody': 'densekit.backbones.carn',
    'DRSformer': 'densekit.backbones.drsformer',
    'EDSRBody': 'densekit.backbones.edsr',
    'FSRCNNBody': 'densekit.backbones.fsrcnn',
    'ResUNet': 'densekit.backbones.resunet',
    'SCNetBody': 'densekit.backbones.scnet',
    'PIIPInteraction': 'densekit.backbones.piip_interaction',
    'PixelShuffleHead': 'densekit.heads.reconstruction',
    'DeconvHead': 'densekit.heads.reconstruction',
    'ReconstructionHead': 'densekit.heads.reconstruction',
    'ShiftUpsampleHead': 'densekit.heads.shift_head',
}

MOVED_FILES = sorted(
    ['densekit/backbones/' + n for n in ('carn.py', 'drsformer.py', 'edsr.py', 'fsrcnn.py',
                                         'resunet.py', 'scnet.py', 'piip_interaction.py')]
    + ['densekit/blocks/' + n for n in ('edsr_block.py', 'mefc.py', 'shift.py',
                                        'sparse_transformer.py')]
    + ['densekit/heads/reconstruction.py', 'densekit/heads/shift_head.py',
       'densekit/necks/piip_interaction.py']
    + [str(p.relative_to(REPO))
       for p in (REPO / 'densekit/tasks/restoration/models').glob('*.py')])

KEYS_FILE = Path(__file__).parents[1] / 'fixtures' / 'drsformer_tiny_cpu_rain.state_dict_keys.txt'


@pytest.mark.parametrize('module', sorted(NEW_HOMES))
def test_new_locations_define_the_networks(module: str) -> None:
    mod = importlib.import_module(module)
    for name in NEW_HOMES[module]:
        obj = getattr(mod, name)
        if isinstance(obj, type):
            assert obj.__module__ == module, f'{name} is defined in {obj.__module__}'


@pytest.mark.parametrize('old', sorted(OLD_PATHS))
def test_old_import_paths_give_the_same_objects(old: str) -> None:
    mod = importlib.import_module(old)
    for name, (new_module, new_name) in OLD_PATHS[old].items():
        assert getattr(mod, name) is getattr(importlib.import_module(new_module), new_name), name


def test_old_package_exports_unchanged() -> None:
    import densekit.tasks.restoration as restoration
    from densekit.tasks.restoration import models

    assert sorted(models.__all__) == sorted([
        'DIV2K_MEAN', 'ResBlock', 'PixelShuffleUpsampler', 'PixelShuffleHead', 'DeconvHead',
        'ReconstructionHead', 'EDSRBody', 'FSRCNNBody', 'CARNBody', 'SCNetBody', 'Shift8',
        'ShiftUpsampleHead', 'DRSformer', 'LayerNorm2d', 'TKSA', 'MSFN', 'SparseBlock', 'MEFC',
        'ResUNet'])
    for name in models.__all__ + restoration.__all__:
        assert hasattr(models if name in models.__all__ else restoration, name), name


def test_layernorm2d_is_the_channel_layernorm_with_eps_1e5() -> None:
    from densekit.blocks.sparse_transformer import SparseBlock
    from densekit.tasks.restoration.models import LayerNorm2d

    ln = LayerNorm2d(8)
    assert isinstance(ln, ChannelLayerNorm) and ln.eps == 1e-5
    block = SparseBlock(8, 2)
    assert type(block.norm1) is ChannelLayerNorm and block.norm1.eps == 1e-5
    # same weights and numerics: the old name and the new class give one result
    x = torch.randn(2, 8, 5, 6, dtype=torch.float64)
    torch.testing.assert_close(ln.double()(x), ChannelLayerNorm(8, eps=1e-5).double()(x),
                               rtol=0, atol=0)


@pytest.mark.parametrize('name', sorted(REGISTERED))
def test_registered_names_unchanged(name: str) -> None:
    cls = MODELS.get(f'densekit.{name}')
    assert cls is not None and cls.__name__ == name and cls.__module__ == REGISTERED[name]


def test_edsr_resblock_is_not_the_medical_resblock() -> None:
    from densekit.blocks import EDSRResBlock
    from densekit.tasks.medical3d.blocks import ResBlock as MedicalResBlock

    assert EDSRResBlock is not MedicalResBlock and EDSRResBlock.__name__ != 'ResBlock'


@pytest.mark.parametrize('path', MOVED_FILES)
def test_moved_code_uses_the_layer_factory(path: str) -> None:
    source = (REPO / path).read_text()
    raw = [m.start() for m in re.finditer(r'\bnn\.Conv2d\(', source)]
    assert not raw, f'{path}: {len(raw)} raw nn.Conv2d( call(s); use LayerFactory(2).conv'


def test_state_dict_keys_match_the_saved_list() -> None:
    saved = []
    for line in KEYS_FILE.read_text().splitlines():
        if line and not line.startswith('#'):
            key, shape = line.split()
            saved.append((key, shape))
    cfg = Config.fromfile(
        str(REPO / 'configs/restoration/drsformer-tiny_c16_1xb4-10min_photos-rain.py'))
    init_default_scope('densekit')
    model = MODELS.build(cfg.model)
    got = [(k, 'x'.join(map(str, v.shape)) or 'scalar') for k, v in model.state_dict().items()]
    assert got == saved
