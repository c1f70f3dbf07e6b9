"""The ``densekit`` command: train, test, infer, bench and demo.

``tools/train.py``, ``tools/test.py``, ``tools/infer.py`` and ``tools/benchmark.py`` call
:func:`main` with their subcommand, so the scripts and the command share one implementation.
"""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from mmengine.config import DictAction

EPILOG = """examples:
  densekit demo --task seg
  densekit train configs/segmentation/fpn_r18-tiny_1xb8-shapes-128x128.py --work-dir work_dirs/fpn
  densekit train CONFIG --resume                  # continue from work_dir/last_checkpoint
  densekit test CONFIG work_dirs/fpn/iter_800.pth --show-dir work_dirs/fpn/pictures
  densekit infer CONFIG CKPT 'photos/*.png' --out predictions/
  tools/dist_train.sh CONFIG 2                    # torchrun, 2 processes (gloo on CPU)
"""


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
                        help='override config entries, e.g. train_cfg.max_iters=100 '
                             "optim_wrapper.optimizer.lr=0.01 'model.backbone.depth=18'")
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none',
                        help='job launcher: none (single process), pytorch (under torchrun, '
                             'see tools/dist_train.sh) or slurm (under srun)')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0,
                        help=argparse.SUPPRESS)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``densekit`` command."""
    parser = argparse.ArgumentParser(
        prog='densekit', formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG,
        description='densekit: dense prediction and image restoration on OpenMMLab. '
                    'Configs are mmengine configs; every module is registered under the '
                    "'densekit' scope and mmseg./mmdet. modules can be mixed in.")
    sub = parser.add_subparsers(dest='command', metavar='COMMAND', required=True)

    p = sub.add_parser('train', help='train a model from a config (mmengine Runner)',
                       description='Train with an mmengine Runner; logs and checkpoints go to '
                                   'the work dir. Checkpoints are written atomically and '
                                   'loaded safely (weights_only).')
    p.add_argument('config', help='config file path')
    p.add_argument('--work-dir', help='directory for logs and checkpoints '
                                      '(default: ./work_dirs/<config name>)')
    p.add_argument('--resume', nargs='?', const='auto', default=None, metavar='CKPT',
                   help='resume training: from CKPT, or with no value from the latest '
                        'checkpoint in the work dir')
    p.add_argument('--amp', action='store_true', help='automatic mixed precision')
    p.add_argument('--seed', type=int, help='random seed (overrides randomness.seed)')
    p.add_argument('--deterministic', action='store_true',
                   help='deterministic algorithms (bit-reproducible runs)')
    p.add_argument('--time-budget', type=float, metavar='SECONDS',
                   help='stop training after this many seconds and save that checkpoint')
    _add_common(p)

    p = sub.add_parser('test', help='evaluate a checkpoint on the config\'s test split',
                       description='Evaluate CHECKPOINT with the config\'s test evaluator.')
    p.add_argument('config', help='config file path')
    p.add_argument('checkpoint', help='checkpoint file')
    p.add_argument('--work-dir', help='directory for the evaluation log')
    p.add_argument('--out', help='write metrics as JSON (or raw predictions with a .pkl name)')
    p.add_argument('--show-dir', help='write prediction pictures into this directory')
    _add_common(p)

    p = sub.add_parser('infer', help='run a trained model on images, a folder or a glob',
                       description='Predict on INPUT files (images, folders or globs). '
                                   'Unreadable files are reported and skipped.')
    p.add_argument('config', help='config file path')
    p.add_argument('checkpoint', help='checkpoint file')
    p.add_argument('inputs', nargs='+', metavar='INPUT', help='image file, folder or glob')
    p.add_argument('--out', required=True, help='output directory')
    p.add_argument('--device', default=None, help='cpu or cuda (default: cuda if available)')

    p = sub.add_parser('bench', help='benchmarks against peer libraries (tools/benchmark.py)',
                       description='Run densekit against its peers in one process, alternating, '
                                   'median of N runs; prints time ratios and peak memory.')
    from densekit.benchmark import load_suites
    p.add_argument('suite', choices=[*load_suites(), 'all'], help='which benchmark to run')
    p.add_argument('--repeats', type=int, default=5, help='timed runs per case (median)')
    p.add_argument('--quick', action='store_true', help='small shapes, for a smoke check')
    p.add_argument('--only', metavar='TEXT',
                   help='run only the cases whose name contains TEXT (e.g. --only FPN)')

    from densekit.demo import STAGES
    p = sub.add_parser('demo', help='tour of the tasks on built-in data (what `make demo` runs)',
                       description='Generate built-in data, train briefly, evaluate, save '
                                   'pictures; writes work_dirs/demo/summary.json.')
    p.add_argument('--task', choices=[*STAGES, 'all'], default='all')
    p.add_argument('--work-dir', default='work_dirs/demo')
    p.add_argument('--data-root', default='data', help='where built-in data is generated')
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``densekit`` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    import densekit  # noqa: F401  (registers modules, safe checkpoint loading, atomic writes)
    from densekit import apis

    if args.command == 'train':
        resume = True if args.resume == 'auto' else args.resume
        apis.train(args.config, work_dir=args.work_dir, resume=resume, amp=args.amp,
                   cfg_options=args.cfg_options, launcher=args.launcher, seed=args.seed,
                   deterministic=args.deterministic, time_budget=args.time_budget)
    elif args.command == 'test':
        apis.test(args.config, args.checkpoint, work_dir=args.work_dir, out=args.out,
                  show_dir=args.show_dir, cfg_options=args.cfg_options, launcher=args.launcher)
    elif args.command == 'infer':
        from densekit.inference import infer
        summary = infer(args.config, args.checkpoint, args.inputs, args.out, device=args.device)
        return 1 if summary.failed and not summary.written else 0
    elif args.command == 'bench':
        from densekit.benchmark import run_suites
        run_suites(args.suite, repeats=args.repeats, quick=args.quick, only=args.only)
    elif args.command == 'demo':
        from densekit.demo import run_demo
        run_demo(args.task, work_dir=args.work_dir, data_root=args.data_root)
    return 0


if __name__ == '__main__':
    sys.exit(main())
