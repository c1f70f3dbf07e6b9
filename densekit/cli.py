"""The ``densekit`` command: train, test, infer, bench and demo.

``tools/train.py``, ``tools/test.py``, ``tools/infer.py`` and ``tools/benchmark.py`` call
:func:`main` with their subcommand, so the scripts and the command share one implementation.

Building the parser imports nothing heavy (no torch, no benchmark suites), so ``--help`` and
``--version`` answer at once. User errors (a bad config value, a checkpoint that does not fit,
a file that is not a checkpoint...) are printed as one line and exit with status 2;
``--debug`` shows the traceback instead.
"""
from __future__ import annotations

import argparse
import sys
from typing import Any, Optional, Sequence

VERSION = '0.1.0'
DEMO_TASKS = ('seg', 'sr', 'derain', 'det', 'medical')  # densekit.demo.STAGES, in order
CONFIG_HELP = ('config file path, or a packaged config by name: densekit::<task>/<file>.py '
               '(densekit configs lists them)')

EPILOG = """examples:
  densekit demo --task seg
  densekit train configs/segmentation/fpn_r18-tiny_1xb8-2000i_shapes-128x128.py \\
      --work-dir work_dirs/fpn
  # a packaged config by name
  densekit train densekit::restoration/fsrcnn_x2d56s12m4_1xb4-4min_photos.py
  densekit configs segmentation                   # list the packaged configs
  densekit train CONFIG --resume                  # continue from work_dir/last_checkpoint
  densekit test CONFIG work_dirs/fpn/iter_800.pth --show-dir work_dirs/fpn/pictures
  densekit infer CONFIG CKPT 'photos/*.png' --out predictions/
  densekit check-data CONFIG --split val --out report.json  # every dataset problem at once
  densekit plan data/Task01 --out plans/task01 --gpu-memory 24   # config from a dataset folder
  densekit train plans/task01/config.py --fold 0
  densekit browse CONFIG --out pics/ --num 8      # augmented training samples, drawn
  densekit plot-log work_dirs/fpn --keys loss mIoU --out curves.png
  densekit analyze CONFIG CKPT --out analysis/    # per-class / per-case / per-image numbers
  densekit flops CONFIG --shape 512 512           # parameters and FLOPs per module
  densekit env                                    # paste its output into bug reports
  tools/dist_train.sh CONFIG 2                    # torchrun, 2 processes (gloo on CPU)
"""


class CfgOptionsAction(argparse.Action):
    """``--cfg-options KEY=VALUE ...`` parsed like mmengine's ``DictAction``, with clear errors."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: Optional[str] = None) -> None:
        from mmengine.config import DictAction

        for item in values:
            key = item.split('=', 1)[0]
            if '=' not in item or not key.strip():
                raise argparse.ArgumentError(
                    self, f'{item!r} is not KEY=VALUE (for example train_cfg.max_iters=100)')
        DictAction(self.option_strings, self.dest)(parser, namespace, values, option_string)


def _add_cfg_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--cfg-options', nargs='+', action=CfgOptionsAction,
                        metavar='KEY=VALUE',
                        help='override config entries, e.g. train_cfg.max_iters=100 '
                             "optim_wrapper.optimizer.lr=0.01 'model.backbone.depth=18'")


def _add_common(parser: argparse.ArgumentParser) -> None:
    _add_cfg_options(parser)
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
    parser.add_argument('--version', action='version', version=f'densekit {VERSION}')
    parser.add_argument('--debug', action='store_true',
                        help='show the full traceback of an error instead of one line')
    sub = parser.add_subparsers(dest='command', metavar='COMMAND', required=True)

    p = sub.add_parser('train', help='train a model from a config (mmengine Runner)',
                       description='Train with an mmengine Runner; logs and checkpoints go to '
                                   'the work dir. Checkpoints are written atomically and '
                                   'loaded safely (weights_only).')
    p.add_argument('config', help=CONFIG_HELP)
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
    p.add_argument('--no-strict', action='store_true',
                   help='--resume from a checkpoint whose keys do not all fit the model '
                        '(loads the matching keys and lists the rest)')
    p.add_argument('--fold', metavar='K|all',
                   help='medical: train cross-validation fold K of the config\'s splits file '
                        '(densekit plan\'s splits.json) into WORK_DIR/fold_K, or all cases')
    _add_common(p)

    p = sub.add_parser('test', help='evaluate a checkpoint on the config\'s test split',
                       description='Evaluate CHECKPOINT with the config\'s test evaluator.')
    p.add_argument('config', help=CONFIG_HELP)
    p.add_argument('checkpoint', help='checkpoint file')
    p.add_argument('--work-dir', help='directory for the evaluation log')
    p.add_argument('--out', help='write metrics as JSON (or raw predictions with a .pkl name)')
    p.add_argument('--show-dir', help='write prediction pictures into this directory')
    p.add_argument('--no-strict', action='store_true',
                   help='accept a checkpoint whose keys do not all fit the model')
    _add_common(p)

    p = sub.add_parser('infer', help='run a trained model on images, a folder or a glob',
                       description='Predict on INPUT files (images, NIfTI volumes, folders or '
                                   'globs). A bad input is reported and skipped; the exit '
                                   'status is 1 if any input failed or any pattern matched '
                                   'nothing. Inputs are never overwritten.')
    p.add_argument('config', help=CONFIG_HELP)
    p.add_argument('checkpoint', help='checkpoint file')
    p.add_argument('inputs', nargs='+', metavar='INPUT', help='image file, folder or glob')
    p.add_argument('--out', required=True, help='output directory')
    p.add_argument('--device', default=None, help='cpu or cuda (default: cuda if available)')
    p.add_argument('--no-strict', action='store_true',
                   help='accept a checkpoint whose keys do not all fit the model (loads the '
                        'matching keys and lists the rest)')
    p.add_argument('--score-thr', type=float, default=0.3,
                   help='detection: draw boxes with at least this score (default 0.3)')
    p.add_argument('--tile', type=int, help='restoration: tile size in input pixels')
    p.add_argument('--overlap', type=int, help='restoration: tile overlap in input pixels')
    p.add_argument('--batch-size', type=int, default=1,
                   help='images per forward pass (segmentation and detection)')
    p.add_argument('--skip-existing', action='store_true',
                   help='skip inputs whose outputs all exist already')
    p.add_argument('--channel-axis', type=int, metavar='AXIS',
                   help='medical: the axis of a 4D NIfTI that holds the channels (3)')
    p.add_argument('--backend', choices=('pytorch', 'onnxruntime'), default='pytorch',
                   help='onnxruntime: CHECKPOINT is the .onnx file of densekit export '
                        '(segmentation, restoration, medical; CPU)')
    p.add_argument('--ensemble', nargs='+', metavar='CKPT', default=(),
                   help='medical: more checkpoints (e.g. other folds) whose softmax is averaged '
                        'with CHECKPOINT\'s, window by window')
    _add_cfg_options(p)

    p = sub.add_parser('export', help='export a trained model to ONNX (standard ops), '
                                      'optionally verified by onnxruntime',
                       description='Write the network of CONFIG with CHECKPOINT as an ONNX '
                                   'graph of standard ops with dynamic batch and spatial sizes '
                                   '(see densekit.export). --verify compares onnxruntime with '
                                   'PyTorch on another size; the exit status is 1 when the '
                                   'difference exceeds the bound. Needs the deploy extra.')
    p.add_argument('config', help=CONFIG_HELP)
    p.add_argument('checkpoint', help='checkpoint file')
    p.add_argument('--out', required=True, help='the .onnx file to write')
    p.add_argument('--opset', type=int, default=17, help='ONNX opset (default 17)')
    p.add_argument('--shape', type=int, nargs='+', metavar='N',
                   help='example input size: H W (D H W for medical windows)')
    p.add_argument('--static', action='store_true',
                   help='fix batch 1 and --shape instead of dynamic sizes')
    p.add_argument('--verify', action='store_true',
                   help='run onnxruntime and PyTorch on another size and print the difference')
    p.add_argument('--no-strict', action='store_true',
                   help='accept a checkpoint whose keys do not all fit the model')
    _add_cfg_options(p)

    p = sub.add_parser('plan', help='medical: plan a dataset folder (fingerprint, nnU-Net rules) '
                                    'and write plans.json, config.py and splits.json',
                       description='Read every training case of DATASET_DIR (MSD / nnU-Net '
                                   'layout) and write PLAN_DIR/plans.json, PLAN_DIR/config.py '
                                   '(a config densekit train runs) and PLAN_DIR/splits.json '
                                   '(5 seeded folds). Input files are only read.')
    p.add_argument('dataset', metavar='DATASET_DIR', help='folder with dataset.json')
    p.add_argument('--out', required=True, metavar='PLAN_DIR', help='where the plan goes')
    budget = p.add_mutually_exclusive_group()
    budget.add_argument('--gpu-memory', type=float, metavar='GB',
                        help='GPU memory budget for training (default 8)')
    budget.add_argument('--cpu', action='store_true',
                        help='plan for CPU training (tiny preset, small patches)')
    p.add_argument('--workers', type=int, default=None, metavar='N',
                   help='reader processes for the fingerprint (default min(4, CPUs))')
    p.add_argument('--no-progress', action='store_true', help='no progress bar')

    p = sub.add_parser('evaluate-folds', help='medical: per-fold and mean Dice/HD95 of --fold '
                                              'runs on their held-out cases; post-processing',
                       description='Evaluate each WORK_DIR (one densekit train --fold K run) '
                                   'on its fold\'s held-out cases, print per-fold and mean '
                                   'Dice / HD95, decide per class whether keeping the largest '
                                   'connected component helps (nnU-Net\'s rule) and store the '
                                   'decision in the plan (plans.json), which densekit infer '
                                   'applies.')
    p.add_argument('work_dirs', nargs='+', metavar='WORK_DIR', help='fold work dirs')
    p.add_argument('--device', default='cpu', help='cpu or cuda (default cpu)')
    p.add_argument('--out', metavar='FILE.json', help='also write the results as JSON')
    p.add_argument('--no-update-plans', action='store_true',
                   help='do not write the post-processing decision into plans.json')
    p.add_argument('--no-hd95', action='store_true', help='Dice only (faster)')

    p = sub.add_parser('bench', help='benchmarks against peer libraries (benchmarks/ of a '
                                     'source checkout)',
                       description='Run densekit against its peers in one process, alternating, '
                                   'median of N runs; prints time ratios and peak memory. '
                                   'SUITE is a suite name (see benchmarks/harness.py) or all. '
                                   'Needs a source checkout: the benchmarks/ folder is not '
                                   'installed with the package.')
    p.add_argument('suite', help='which benchmark to run (a suite name, or all)')
    p.add_argument('--repeats', type=int, default=5, help='timed runs per case (median)')
    p.add_argument('--quick', action='store_true', help='small shapes, for a smoke check')
    p.add_argument('--only', metavar='TEXT',
                   help='run only the cases whose name contains TEXT (e.g. --only FPN)')

    p = sub.add_parser('demo', help='tour of the tasks on built-in data (what `make demo` runs)',
                       description='Generate built-in data, train briefly, evaluate, save '
                                   'pictures; writes work_dirs/demo/summary.json.')
    p.add_argument('--task', choices=[*DEMO_TASKS, 'all'], default='all')
    p.add_argument('--work-dir', default='work_dirs/demo')
    p.add_argument('--budget', type=int, default=None, metavar='SECONDS',
                   help="every stage's training time budget (default: each stage's own, "
                        'which gives the README numbers)')
    p.add_argument('--data-root', default='data', help='where built-in data is generated')
    _add_check_data_parser(sub)
    _add_tool_parsers(sub)
    return parser


def _add_tool_parsers(sub: Any) -> None:
    """The everyday tools (densekit.analysis): env, flops, plot-log, analyze, browse."""
    p = sub.add_parser('env', help='versions, devices, CPU ISA, threads and fast paths '
                                   '(paste it into bug reports)',
                       description='Print the environment: Python and library versions, mmcv '
                                   'ops, CUDA/cuDNN and GPUs, CPU model and ISA, thread '
                                   "counts and densekit's fast-path state.")
    p.add_argument('--json', action='store_true', help='print JSON instead of a table')

    p = sub.add_parser('configs', help='list the configs that ship with densekit',
                       description='Print the packaged configs as densekit::<task>/<file>.py '
                                   'names, which every command that takes a config accepts.')
    p.add_argument('task', nargs='?', default='',
                   help='only this folder (segmentation, detection, restoration, medical3d)')
    p.add_argument('--paths', action='store_true', help='print the file paths instead')

    p = sub.add_parser('flops', help="parameters and FLOPs per module of a config's model",
                       description='Count parameters and FLOPs (multiply-adds, mmengine '
                                   'FlopAnalyzer) per module on one input of --shape.')
    p.add_argument('config', help=CONFIG_HELP)
    p.add_argument('--shape', type=int, nargs='+', metavar='N',
                   help='input size: H W for images, H W D for volumes (default: the '
                        "config's crop / patch size)")
    p.add_argument('--depth', type=int, default=2,
                   help='depth of the module tree to list (default 2)')
    p.add_argument('--json', metavar='FILE', help='also write the report as JSON')

    p = sub.add_parser('plot-log', help="training curves from a work dir's scalars.json",
                       description="Plot mmengine's vis_data/scalars.json (the newest run in "
                                   'WORK_DIR, or a scalars.json given directly): one panel per '
                                   'key, training and validation as separate series.')
    p.add_argument('work_dir', metavar='WORK_DIR', help='work dir, run dir or scalars.json')
    p.add_argument('--keys', nargs='+', metavar='KEY',
                   help='keys to plot (default: loss and every validation metric)')
    p.add_argument('--out', default='curves.png', help='output PNG (default curves.png)')
    p.add_argument('--title', default='', help='figure title')

    p = sub.add_parser('analyze', help='per-class / per-case / per-image analysis of a '
                                       'checkpoint',
                       description='seg: confusion matrix and per-class IoU/Acc; det: '
                                   'per-class AP and precision-recall curves; medical: '
                                   'per-case Dice/HD95 CSV; sr/derain: per-image PSNR/SSIM CSV '
                                   'and zoomed crops. The checkpoint is loaded strictly.')
    p.add_argument('config', help=CONFIG_HELP)
    p.add_argument('checkpoint', help='checkpoint file')
    p.add_argument('--out', default='analysis', help='output directory (default analysis/)')
    p.add_argument('--split', choices=['test', 'val', 'train'], default='test',
                   help="which dataloader of the config to run (default test)")
    p.add_argument('--device', default=None, help='cpu or cuda (default: cuda if available)')
    _add_cfg_options(p)

    p = sub.add_parser('browse', help='pictures of samples as the training pipeline makes them',
                       description='Draw NUM samples of SPLIT after the pipeline (augmentations '
                                   'included): labels, boxes or the LQ/GT pair; volumes as three '
                                   'orthogonal slices.')
    p.add_argument('config', help=CONFIG_HELP)
    p.add_argument('--out', required=True, help='output directory')
    p.add_argument('--num', type=int, default=8, help='how many pictures (default 8)')
    p.add_argument('--split', choices=['train', 'val', 'test'], default='train',
                   help='which dataloader of the config (default train)')
    p.add_argument('--seed', type=int, help='seed the augmentations (default: new each run)')
    _add_cfg_options(p)


def _add_check_data_parser(sub: Any) -> None:
    """``densekit check-data``: the dataset doctor (densekit.doctor)."""
    p = sub.add_parser('check-data', help="examine a config's dataset and report every problem",
                       description="Read the dataset of the config's --split through the "
                                   "config's own dataset class and open every file (in worker "
                                   'processes): label values, 0/255 and colour masks, missing '
                                   'pairs, sizes, COCO annotations, NIfTI grids, LQ/GT scale, '
                                   'unreadable files. Prints each finding with its fix; exit '
                                   'status 1 on errors (warnings alone pass).')
    p.add_argument('config', help=CONFIG_HELP)
    p.add_argument('--split', choices=['train', 'val', 'test'], default='train',
                   help='which dataloader\'s dataset to check (default train)')
    p.add_argument('--out', metavar='REPORT.json', help='also write the findings as JSON')
    p.add_argument('--workers', type=int, default=None, metavar='N',
                   help='reader processes (default min(4, CPUs); 1 reads in-process)')
    p.add_argument('--fix-palette', metavar='OUT_DIR',
                   help='segmentation: write class-index PNGs of RGB colour masks into OUT_DIR '
                        '(palette colour i -> class i); inputs are never overwritten')
    p.add_argument('--no-progress', action='store_true', help='no progress bar')
    _add_cfg_options(p)


def _user_errors() -> tuple[type, ...]:
    """Exception types that mean bad input from the user, printed as one line."""
    from densekit.errors import MissingExtra

    return (ValueError, TypeError, KeyError, OSError, MissingExtra)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``densekit`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except _user_errors() as err:
        if args.debug:
            raise
        message = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
        print(f'densekit {args.command}: error: {message or type(err).__name__} '
              '(--debug shows the traceback)', file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    import densekit  # noqa: F401  (registers modules, safe checkpoint loading, atomic writes)
    from densekit import apis

    if args.command == 'train':
        resume = True if args.resume == 'auto' else args.resume
        cfg_options, work_dir = args.cfg_options, args.work_dir
        if args.fold is not None:
            from densekit.tasks.medical3d.autoconfig import fold_overrides
            folds, work_dir = fold_overrides(apis.load_config(args.config, cfg_options),
                                             args.fold, work_dir)
            cfg_options = {**(cfg_options or {}), **folds}
        apis.train(args.config, work_dir=work_dir, resume=resume, amp=args.amp,
                   cfg_options=cfg_options, launcher=args.launcher, seed=args.seed,
                   deterministic=args.deterministic, time_budget=args.time_budget,
                   strict=not args.no_strict)
    elif args.command == 'test':
        apis.test(args.config, args.checkpoint, work_dir=args.work_dir, out=args.out,
                  show_dir=args.show_dir, cfg_options=args.cfg_options, launcher=args.launcher,
                  strict=not args.no_strict)
    elif args.command == 'infer':
        from densekit.inference import InferOptions, infer
        options = InferOptions(score_thr=args.score_thr, tile=args.tile, overlap=args.overlap,
                               batch_size=args.batch_size, skip_existing=args.skip_existing,
                               channel_axis=args.channel_axis, ensemble=tuple(args.ensemble))
        summary = infer(args.config, args.checkpoint, args.inputs, args.out, device=args.device,
                        strict=not args.no_strict, cfg_options=args.cfg_options,
                        options=options, backend=args.backend)
        return 0 if summary.ok else 1
    elif args.command == 'export':
        from densekit.export import export_onnx
        report = export_onnx(args.config, args.checkpoint, args.out, opset=args.opset,
                             shape=args.shape, static=args.static, verify=args.verify,
                             strict=not args.no_strict, cfg_options=args.cfg_options)
        print(report.summary())
        return 0 if report.max_abs_diff is None or report.verified else 1
    elif args.command == 'bench':
        load_suites, run_suites = _benchmark_harness()
        names = [*load_suites(), 'all']
        if args.suite not in names:
            raise ValueError(f'unknown benchmark suite {args.suite!r}; choose one of '
                             f'{", ".join(names)}')
        run_suites(args.suite, repeats=args.repeats, quick=args.quick, only=args.only)
    elif args.command == 'demo':
        from densekit.demo import run_demo
        run_demo(args.task, work_dir=args.work_dir, data_root=args.data_root,
                 budget_s=args.budget)
    elif args.command == 'check-data':
        return _run_check_data(args)
    elif args.command == 'plan':
        from densekit.tasks.medical3d.autoconfig import summary_lines, write_plan
        content = write_plan(args.dataset, args.out, gpu_memory_gb=args.gpu_memory,
                             cpu=args.cpu, workers=args.workers,
                             progress=not args.no_progress)
        print('\n'.join(summary_lines(content)))
        print(f'wrote {args.out}/plans.json, config.py, splits.json')
    elif args.command == 'evaluate-folds':
        import json

        from densekit.fileio import atomic_write_text
        from densekit.tasks.medical3d.folds import evaluate_folds, format_folds
        result = evaluate_folds(args.work_dirs, device=args.device,
                                update_plans=not args.no_update_plans, hd95=not args.no_hd95)
        print(format_folds(result))
        if args.out:
            atomic_write_text(json.dumps(result, indent=1), args.out)
    else:
        return _run_tool(args)
    return 0


def _benchmark_harness() -> tuple[Any, Any]:
    """``load_suites`` and ``run_suites`` of the ``benchmarks/`` folder of a source checkout.

    The benchmarks are not installed with the package: they are looked up next to the
    ``densekit`` package's parent folder (the checkout it runs from) and in the working
    directory.

    Raises:
        FileNotFoundError: Neither place has a ``benchmarks/`` folder.
    """
    import importlib
    from pathlib import Path

    import densekit

    candidates = [Path(densekit.__file__).resolve().parents[1], Path.cwd().resolve()]
    for root in candidates:
        if (root / 'benchmarks' / 'harness.py').is_file():
            if str(root) not in sys.path:
                sys.path.insert(0, str(root))
            harness = importlib.import_module('benchmarks.harness')
            return harness.load_suites, harness.run_suites
    raise FileNotFoundError(
        'densekit bench runs the benchmarks/ folder of a densekit source checkout, which an '
        f'installed copy does not include; none found in {" or ".join(map(str, candidates))}. '
        'Run it from the checkout (or with the checkout as the working directory).')


def _run_tool(args: argparse.Namespace) -> int:
    """The commands of densekit.analysis (imported here, not at parser time)."""
    import json

    if args.command == 'configs':
        from densekit.packaged import list_configs, resolve_config
        names = list_configs(args.task)
        if not names:
            raise ValueError(f'no packaged configs under task {args.task!r}')
        for name in names:
            print(resolve_config(name) if args.paths else name)
    elif args.command == 'env':
        from densekit.analysis.env import collect_env, format_env
        env = collect_env()
        print(json.dumps(env, indent=2) if args.json else format_env(env))
    elif args.command == 'flops':
        from densekit.analysis.flops import count_flops, format_report
        shape = args.shape
        if shape is not None and len(shape) == 3:  # H W D on the command line -> (D, H, W)
            shape = [shape[2], shape[0], shape[1]]
        report = count_flops(args.config, shape, max_depth=args.depth)
        print(format_report(report))
        if args.json:
            from densekit.fileio import atomic_write_text
            atomic_write_text(json.dumps(report.as_dict(), indent=2), args.json)
    elif args.command == 'plot-log':
        from densekit.analysis.curves import find_scalars, plot_curves, read_scalars
        source = find_scalars(args.work_dir)
        plot_curves(read_scalars(source), args.keys, args.out, title=args.title)
        print(f'plot-log: curves of {source} written to {args.out}')
    elif args.command == 'analyze':
        from densekit.analysis.evaluate import analyze, format_summary
        summary = analyze(args.config, args.checkpoint, args.out, split=args.split,
                          device=args.device, cfg_options=args.cfg_options)
        print(format_summary(summary))
        print(f'analyze: files in {args.out}')
    elif args.command == 'browse':
        from densekit.analysis.browse import browse
        written = browse(args.config, args.out, num=args.num, split=args.split,
                         cfg_options=args.cfg_options, seed=args.seed)
        print(f'browse: {len(written)} pictures of {args.split} samples in {args.out}')
    else:
        raise ValueError(f'unknown command {args.command!r}')
    return 0


def _run_check_data(args: argparse.Namespace) -> int:
    """Run the dataset doctor; 0 when clean, 1 on errors."""
    from densekit.doctor import check_data

    report = check_data(args.config, args.split, out=args.out, workers=args.workers,
                        cfg_options=args.cfg_options, fix_palette=args.fix_palette,
                        progress=not args.no_progress)
    report.print(sys.stdout)
    return report.exit_status


if __name__ == '__main__':
    sys.exit(main())
