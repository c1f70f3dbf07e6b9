"""``densekit env`` and ``densekit flops``: every CPU config of every task family gives a count."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from tests.cli_capture import run_cli
from tests.conftest import REPO

CPU_CONFIGS = sorted({str(p.relative_to(REPO)) for pattern in
                      ('configs/*/*shapes*', 'configs/*/*photos*', 'configs/*/*phantoms*')
                      for p in REPO.glob(pattern)})


def test_env_reports_versions_cpu_and_fast_paths() -> None:
    import platform

    import mmengine

    # the script, with the fast-path switch read from the environment: one path on, others off
    res = subprocess.run([sys.executable, 'tools/env.py'], cwd=REPO, capture_output=True,
                         env=dict(os.environ, DENSEKIT_FAST_PATHS='fpn_add'), text=True,
                         timeout=180)
    assert res.returncode == 0, res.stderr
    text = res.stdout
    assert f'mmengine              {mmengine.__version__}' in text
    assert platform.python_version() in text
    for name in ('torch', 'mmcv', 'mmseg', 'mmdet', 'MONAI', 'albumentations', 'kornia',
                 'nibabel', 'onnxruntime', 'cuDNN', 'GPUs', 'CPU ISA', 'threads', 'fast paths'):
        assert name in text, name
    flags = Path('/proc/cpuinfo').read_text().split('flags', 1)[-1].split('\n', 1)[0]
    assert ('AVX2 yes' in text) == (' avx2' in flags)
    assert ('AVX-512 yes' in text) == (' avx512f' in flags)
    assert 'on: fpn_add; off: ' in text and 'tap_skip' in text.split('off: ')[1]
    code, out, _ = run_cli(['env', '--json'])
    assert code == 0
    env = json.loads(out)
    assert env['fast_paths']['enabled']['fpn_add'] is True
    assert env['torch']['torch_threads'] == torch.get_num_threads()
    expected = 'not installed' if importlib.util.find_spec('onnxruntime') is None else None
    assert expected is None or env['versions']['onnxruntime'] == expected


def test_env_cpu_info_reads_flags(tmp_path: Path) -> None:
    from densekit.analysis.env import cpu_info

    fake = tmp_path / 'cpuinfo'
    fake.write_text('processor\t: 0\nmodel name\t: Test CPU 9000\nflags\t\t: fpu sse4_2 avx '
                    'avx2 fma\n')
    info = cpu_info(str(fake))
    assert info['model'] == 'Test CPU 9000'
    assert info['avx2'] and not info['avx512']
    assert info['isa'] == ['sse4_2', 'avx', 'avx2', 'fma']


@pytest.mark.parametrize('config', CPU_CONFIGS)
def test_flops_every_cpu_config_gives_a_number(config: str) -> None:
    from densekit.analysis.flops import count_flops

    shape = (16, 16, 16) if 'medical3d' in config else (32, 32)
    report = count_flops(str(REPO / config), shape, max_depth=1)
    assert report.total_flops > 0
    assert report.input_shape[2:] == shape
    rows = {name: (params, flops) for name, params, flops in report.rows}
    assert rows['(model)'] == (report.total_params, report.total_flops)
    children = [flops for name, (_, flops) in rows.items() if name != '(model)']
    assert 0 < sum(children) <= report.total_flops  # children add up to at most the model


def test_flops_grow_with_the_input_and_fallback_agrees_on_convs() -> None:
    from mmengine.analysis import FlopAnalyzer

    from densekit.analysis.flops import _hook_flops, count_flops

    config = str(REPO / 'configs/segmentation/fpn_r18-tiny_1xb8-2000i_shapes-128x128.py')
    small, big = count_flops(config, (32, 32)), count_flops(config, (64, 64))
    assert small.method.startswith('mmengine FlopAnalyzer')
    assert 3.5 < big.total_flops / small.total_flops < 4.5  # a conv net: ~ area
    assert small.total_params == big.total_params == sum(
        p.numel() for p in _build(config).parameters())
    # the hook counter (fallback for untraceable models) equals mmengine on conv/linear nets
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2,
                        groups=2), nn.ConvTranspose2d(8, 4, 2, stride=2), nn.Flatten(),
                        nn.LazyLinear(5))
    x = torch.randn(1, 3, 20, 20)
    net(x)
    assert _hook_flops(net, x)[''] == FlopAnalyzer(net, (x,)).total()


def _build(config: str) -> nn.Module:
    from mmengine.config import Config
    from mmengine.registry import MODELS, init_default_scope

    init_default_scope('densekit')
    return MODELS.build(Config.fromfile(config).model)


def test_flops_command_and_bad_shape(tmp_path: Path) -> None:
    config = str(REPO / 'configs/medical3d/resunet-tiny_1xb2-600i_phantoms-48x48x48.py')
    out = tmp_path / 'flops.json'
    code, text, _ = run_cli(['flops', config, '--shape', '24', '32', '16', '--depth', '1',
                             '--json', str(out)])
    assert code == 0
    assert 'input [1, 2, 16, 24, 32]' in text and 'backbone' in text
    report = json.loads(out.read_text())
    assert report['total_flops'] > 0 and report['task'] == 'medical'
    code, _, err = run_cli(['flops', config, '--shape', '16', '16'])
    assert code == 2
    assert "shape=[16, 16] does not fit a 'medical' model: expected 3" in err


def test_call_flops_counts_two_per_multiply_add_forward_and_backward():
    import torch
    from torch import nn

    from densekit.analysis.flops import call_flops

    conv = nn.Conv2d(3, 5, 3, padding=1, bias=False)
    x = torch.randn(2, 3, 9, 11)
    macs = 2 * 5 * 9 * 11 * 3 * 3 * 3  # outputs x (in channels x kernel)
    with torch.no_grad():
        assert call_flops(lambda: conv(x)) == 2 * macs
    # backward of a conv whose input needs no grad: the weight gradient, one more conv's worth
    assert call_flops(lambda: conv(x).sum().backward()) == 4 * macs
