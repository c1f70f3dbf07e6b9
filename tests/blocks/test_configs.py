"""The seed-block configs train on built-in data; the EDSR block option merges exactly."""
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

from densekit.registry import MODELS
from tests.conftest import REPO

SR_CONFIG = REPO / 'configs' / 'restoration' / 'edsr-lk13_x2c32b6_1xb4-4min_photos.py'
MED_CONFIG = REPO / 'configs' / 'medical3d' / 'unireplknet-3d-tiny_1xb2-600i_phantoms-48x48x48.py'


def _train_steps(cfg: Config, work_dir: Path, steps: int = 1) -> None:
    from mmengine.runner import Runner

    cfg.work_dir = str(work_dir)
    cfg.custom_hooks = []
    runner = Runner.from_cfg(cfg)
    model = runner.model.train()
    data = next(iter(runner.build_dataloader(cfg.train_dataloader)))
    before = [p.detach().clone() for p in model.parameters()]
    wrapper = runner.build_optim_wrapper(cfg.optim_wrapper)
    for _ in range(steps):
        losses = model.train_step(data, wrapper)
    assert losses and all(torch.isfinite(v).all() for k, v in losses.items() if 'loss' in k)
    changed = [not torch.equal(a, b) for a, b in zip(model.parameters(), before)]
    assert sum(changed) > len(changed) // 2


def test_large_kernel_sr_config_trains_one_step(tmp_path):
    from densekit.tasks.restoration import generate_restoration_photos

    root = generate_restoration_photos(tmp_path / 'photos', train=('page',),
                                       val=('microaneurysms',))
    cfg = Config.fromfile(str(SR_CONFIG))
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.data_root = str(root)
    cfg.train_dataloader.batch_size = 2
    # the head's last conv starts at zero (output = bicubic), so the body learns from step 2
    _train_steps(cfg, tmp_path / 'work', steps=2)


def test_unireplknet_3d_unet_config_trains_one_step(tmp_path):
    from densekit.tasks.medical3d import generate_phantoms

    root = generate_phantoms(tmp_path / 'phantoms', num_train=2, num_val=1, num_test=0)
    cfg = Config.fromfile(str(MED_CONFIG))
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.data_root = str(root)
    cfg.train_dataloader.num_workers = 0
    cfg.train_dataloader.persistent_workers = False
    _train_steps(cfg, tmp_path / 'work')


@pytest.mark.parametrize('kernel', [13, 7])
def test_edsr_body_with_large_kernel_blocks_deploys_exactly(kernel):
    torch.manual_seed(0)
    body = MODELS.build(dict(type='densekit.EDSRBody', channels=8, num_blocks=2, res_scale=0.5,
                             block_cfg=dict(type='densekit.LargeKernelResBlock',
                                            kernel_size=kernel))).eval()
    assert body.blocks[0].res_scale == 0.5 and len(body.blocks[0].mixer.branches) > 0
    x = torch.rand(1, 3, 21, 17)
    with torch.no_grad():
        ref = body(x)
        for block in body.blocks:
            block.switch_to_deploy()
        out = body(x)
    assert out.shape == (1, 8, 21, 17)
    assert torch.allclose(out, ref, atol=1e-5)
    with pytest.raises(TypeError, match='block_cfg'):
        MODELS.build(dict(type='densekit.EDSRBody', block_cfg='LargeKernelResBlock'))
