"""The configs the demo stages train: each stage's prepared config (data roots, work dir, time
budget hooks, final checkpoint and validation, iteration overrides) must stay exactly what the
stages built before they shared :func:`densekit.demo.prepare_stage_config`.

``tests/fixtures/demo_stage_configs.json`` holds ``cfg.to_dict()`` of every stage's config as
the stage passed it to ``apis.train``, with the temporary directory written ``<tmp>`` and the
config directory ``<configs>``. Training, testing and data generation are replaced by stand-ins
that only record, so the test takes seconds. Regenerate the fixture (only when a stage's config
is meant to change) with ``python -m tests.test_demo_stages --record``.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Dict, Optional

import pytest
import torch

FIXTURE = Path(__file__).parent / 'fixtures' / 'demo_stage_configs.json'

# (case name, stage name, budget override, whether a GPU is reported)
CASES = [
    ('seg', 'seg', None, False), ('det', 'det', None, False), ('sr', 'sr', None, False),
    ('derain', 'derain', None, False), ('medical', 'medical', None, False),
    ('seg-77s', 'seg', 77, False), ('det-77s', 'det', 77, False), ('sr-77s', 'sr', 77, False),
    ('derain-77s', 'derain', 77, False), ('medical-77s', 'medical', 77, False),
    ('medical-gpu', 'medical', None, True),
]


class _Captured(Exception):
    """Raised by the stand-in ``apis.train`` once it holds the stage's config."""

    def __init__(self, cfg: object) -> None:
        super().__init__('captured')
        self.cfg = cfg


def _generated(path: Path, *args: object, **kwargs: object) -> Path:
    return Path(path)


def _stand_in_train(cfg: object) -> None:
    raise _Captured(cfg)


def _normalise(cfg_dict: dict, tmp: Path) -> dict:
    from densekit.demo import CONFIG_DIR

    text = json.dumps(cfg_dict, sort_keys=True, default=repr)
    text = text.replace(str(tmp), '<tmp>').replace(str(CONFIG_DIR), '<configs>')
    return json.loads(text)


def capture_stage_config(stage: str, budget_s: Optional[int], gpu: bool, tmp: Path,
                         patch: pytest.MonkeyPatch) -> dict:
    """Run demo stage ``stage`` up to ``apis.train`` and return its normalised config dict."""
    import densekit.apis
    import densekit.demo
    import densekit.tasks.detection
    import densekit.tasks.medical3d.phantoms
    import densekit.tasks.restoration.photos
    import densekit.tasks.segmentation

    patch.setattr(densekit.apis, 'train', _stand_in_train)
    patch.setattr(densekit.tasks.segmentation, 'generate_shapes_dataset', _generated)
    patch.setattr(densekit.tasks.detection, 'generate_detection_dataset', _generated)
    patch.setattr(densekit.tasks.medical3d.phantoms, 'generate_phantoms', _generated)
    patch.setattr(densekit.tasks.restoration.photos, 'generate_restoration_photos', _generated)
    patch.setattr(torch.cuda, 'is_available', lambda: gpu)
    patch.setattr(torch.cuda, 'get_device_name', lambda *args: 'stand-in GPU')
    patch.setattr(densekit.demo, '_BUDGET_OVERRIDE', budget_s)
    work_dir = tmp / 'work' / stage
    work_dir.mkdir(parents=True, exist_ok=True)
    with pytest.raises(_Captured) as captured:
        densekit.demo.STAGES[stage](work_dir, tmp / 'data')
    assert (work_dir / 'config.py').is_file()  # every stage dumps what it trains
    return _normalise(captured.value.cfg.to_dict(), tmp)


@pytest.fixture(scope='module')
def recorded() -> Dict[str, dict]:
    return json.loads(FIXTURE.read_text())


def test_fixture_covers_every_case(recorded: Dict[str, dict]) -> None:
    assert sorted(recorded) == sorted(name for name, *_ in CASES)


@pytest.mark.parametrize('name,stage,budget_s,gpu', CASES, ids=[case[0] for case in CASES])
def test_stage_config_is_unchanged(name: str, stage: str, budget_s: Optional[int], gpu: bool,
                                   tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   recorded: Dict[str, dict]) -> None:
    cfg = capture_stage_config(stage, budget_s, gpu, tmp_path, monkeypatch)
    assert cfg == recorded[name]


def _record() -> None:
    import tempfile

    result = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, stage, budget_s, gpu in CASES:
            patch = pytest.MonkeyPatch()
            try:
                result[name] = capture_stage_config(stage, budget_s, gpu,
                                                    Path(tmp) / name, patch)
            finally:
                patch.undo()
            # each case has its own temporary directory; the fixture names them all <tmp>
    FIXTURE.write_text(json.dumps(result, indent=1, sort_keys=True) + '\n')
    print(f'wrote {FIXTURE} ({len(result)} configs)')


if __name__ == '__main__' and '--record' in sys.argv:
    _record()


def test_prepare_stage_config_options(tmp_path: Path) -> None:
    from densekit.demo import prepare_stage_config
    from densekit.tasks.restoration.demo import SR_CONFIG

    cfg = prepare_stage_config(f'restoration/{SR_CONFIG}', tmp_path, tmp_path / 'photos', 55,
                               cfg_options={'train_dataloader.batch_size': 3}, max_iters=40)
    assert cfg.train_dataloader.batch_size == 3
    assert cfg.train_cfg.max_iters == cfg.train_cfg.val_interval == 40
    assert cfg.default_hooks.checkpoint.interval == 40
    budgets = [(hook['type'], hook['budget_s']) for hook in cfg.custom_hooks if 'budget_s' in hook]
    # the config's own budget hooks take the budget; no second TimeBudgetHook is appended
    assert budgets == [('densekit.TimeCosineLRHook', 55), ('densekit.TimeBudgetHook', 55)]
    with pytest.raises(ValueError, match=r'max_iters.*0'):
        prepare_stage_config(f'restoration/{SR_CONFIG}', tmp_path, None, 55, max_iters=0)
