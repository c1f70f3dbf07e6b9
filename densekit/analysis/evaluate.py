"""``densekit analyze``: a checkpoint examined class by class, case by case, image by image.

The model is built and its checkpoint loaded strictly (:func:`densekit.inference.build_model`),
then run over the config's ``test`` (or ``val``) split:

* **seg** - the confusion matrix (rows: ground truth, columns: prediction, ignore_index left
  out), per-class IoU and accuracy (``per_class.csv``) and ``confusion_matrix.png``;
* **det** - COCO evaluation (pycocotools) of the predictions: per-class AP, AP50 and AP75
  (``per_class_ap.csv``) and the precision-recall curves at IoU 0.5 (``pr_curve.png``);
* **medical** - per-case, per-class Dice and HD95 in mm (``per_case.csv``);
* **sr / derain** - per-image PSNR and SSIM of the output and of the baseline (bicubic / the
  degraded input) (``per_image.csv``) and zoomed crops of input, output and ground truth
  side by side (``crops.png``).

``summary.json`` holds the same numbers.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Union

import numpy as np
import torch

from densekit.fileio import atomic_write_bytes, atomic_write_text

__all__ = ['analyze', 'confusion_matrix', 'iou_acc_from_confusion', 'coco_per_class',
           'ANALYZERS']


def confusion_matrix(pred: np.ndarray, gt: np.ndarray, num_classes: int,
                     ignore_index: int = 255) -> np.ndarray:
    """``(num_classes, num_classes)`` int64 counts, rows = ground truth, columns = prediction.

    Pixels whose ground truth is ``ignore_index`` are left out.

    Raises:
        ValueError: ``pred`` and ``gt`` differ in shape, or a value outside
            ``[0, num_classes)`` (other than ``ignore_index`` in ``gt``).
    """
    pred, gt = np.asarray(pred).astype(np.int64).ravel(), np.asarray(gt).astype(np.int64).ravel()
    if pred.shape != gt.shape:
        raise ValueError(f'pred has {pred.size} pixels and gt {gt.size}: they must match')
    keep = gt != ignore_index
    pred, gt = pred[keep], gt[keep]
    for name, values in (('gt', gt), ('pred', pred)):
        bad = values[(values < 0) | (values >= num_classes)]
        if bad.size:
            raise ValueError(f'{name} holds values {sorted(set(bad.tolist()))[:10]} outside '
                             f'[0, {num_classes}) (ignore_index={ignore_index})')
    return np.bincount(gt * num_classes + pred, minlength=num_classes ** 2).reshape(
        num_classes, num_classes)


def iou_acc_from_confusion(matrix: np.ndarray) -> Dict[str, np.ndarray]:
    """Per-class IoU and accuracy (recall) in percent; NaN for a class absent from both."""
    matrix = matrix.astype(np.float64)
    tp = np.diag(matrix)
    gt, pred = matrix.sum(1), matrix.sum(0)
    with np.errstate(invalid='ignore', divide='ignore'):
        iou = 100 * tp / (gt + pred - tp)
        acc = 100 * tp / gt
    return dict(iou=iou, acc=acc, gt_pixels=gt, pred_pixels=pred,
                aacc=np.array(100 * tp.sum() / max(matrix.sum(), 1)))


def _write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    for row in rows:
        writer.writerow([f'{v:.4f}' if isinstance(v, float) else v for v in row])
    atomic_write_text(buffer.getvalue(), path)


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save_figure(fig: Any, path: Path) -> None:
    buffer = io.BytesIO()
    fig.savefig(buffer, format='png')
    atomic_write_bytes(buffer.getvalue(), str(path))


def plot_confusion(matrix: np.ndarray, names: Sequence[str], path: Path) -> None:
    """Row-normalised confusion matrix with the counts written in the cells."""
    n = len(names)
    size = max(4.0, 0.6 * n + 2)
    fig = _figure(size + 1, size)
    ax = fig.add_subplot(1, 1, 1)
    rows = matrix.sum(1, keepdims=True)
    norm = np.divide(matrix, rows, out=np.zeros_like(matrix, dtype=np.float64), where=rows > 0)
    image = ax.imshow(norm, cmap='Blues', vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, fraction=0.046, label='fraction of the ground-truth class')
    ax.set_xticks(range(n), names, rotation=45, ha='right')
    ax.set_yticks(range(n), names)
    ax.set_xlabel('predicted')
    ax.set_ylabel('ground truth')
    if n <= 30:
        for i in range(n):
            for j in range(n):
                ax.text(j, i, f'{int(matrix[i, j])}', ha='center', va='center', fontsize=7,
                        color='white' if norm[i, j] > 0.5 else 'black')
    ax.set_title('confusion matrix (pixels)')
    fig.tight_layout()
    _save_figure(fig, path)


def _loader(cfg: Any, split: str) -> Any:
    from mmengine.runner import Runner

    key = f'{split}_dataloader'
    if cfg.get(key) is None:
        raise ValueError(f'split={split!r}: the config has no {key}')
    return Runner.build_dataloader(cfg[key])


def _predict(model: torch.nn.Module, loader: Any) -> Iterator[Any]:
    with torch.no_grad():
        for batch in loader:
            yield from model.test_step(batch)


def analyze_seg(cfg: Any, model: torch.nn.Module, loader: Any, out: Path) -> Dict[str, Any]:
    """Confusion matrix, per-class IoU / Acc of a segmentation model."""
    head = getattr(model, 'decode_head', None)
    num_classes = int(getattr(head, 'num_classes', 0) or getattr(head, 'out_channels', 2))
    ignore = int(getattr(head, 'ignore_index', 255))
    names = list(loader.dataset.metainfo.get('classes') or [str(c) for c in range(num_classes)])
    matrix = np.zeros((num_classes, num_classes), np.int64)
    images = 0
    for sample in _predict(model, loader):
        pred = sample.pred_sem_seg.data[0].cpu().numpy()
        gt = sample.gt_sem_seg.data[0].cpu().numpy()
        matrix += confusion_matrix(pred, gt, num_classes, ignore)
        images += 1
    stats = iou_acc_from_confusion(matrix)
    rows = [(name, float(stats['iou'][i]), float(stats['acc'][i]), int(stats['gt_pixels'][i]),
             int(stats['pred_pixels'][i])) for i, name in enumerate(names)]
    _write_csv(out / 'per_class.csv', ['class', 'IoU', 'Acc', 'gt_pixels', 'pred_pixels'], rows)
    atomic_write_text(json.dumps(matrix.tolist()), out / 'confusion_matrix.json')
    plot_confusion(matrix, names, out / 'confusion_matrix.png')
    return dict(task='seg', images=images, classes=names, confusion_matrix=matrix.tolist(),
                IoU={n: _num(v) for n, v in zip(names, stats['iou'])},
                Acc={n: _num(v) for n, v in zip(names, stats['acc'])},
                mIoU=_num(np.nanmean(stats['iou'])), mAcc=_num(np.nanmean(stats['acc'])),
                aAcc=_num(stats['aacc']))


def _num(value: Any) -> Optional[float]:
    value = float(value)
    return None if np.isnan(value) else round(value, 4)


def coco_per_class(coco_gt: Any, detections: List[dict]) -> Dict[str, Any]:
    """COCO bbox evaluation (pycocotools) with per-category AP, AP50, AP75 and the PR curve
    at IoU 0.5 (101 recall points) per category."""
    import contextlib

    from pycocotools.cocoeval import COCOeval

    if not detections:  # a model that detects nothing scores 0 everywhere
        recall = [round(0.01 * i, 2) for i in range(101)]
        names = [cat['name'] for cat in coco_gt.loadCats(sorted(coco_gt.getCatIds()))]
        return dict(mAP=0.0, mAP50=0.0, recall=recall,
                    per_class={n: dict(AP=0.0, AP50=0.0, AP75=0.0, pr50=[0.0] * 101)
                               for n in names})
    with contextlib.redirect_stdout(io.StringIO()):
        coco_dt = coco_gt.loadRes(detections)
        evaluator = COCOeval(coco_gt, coco_dt, 'bbox')
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    precision = evaluator.eval['precision']  # (T IoUs, R recalls, K cats, A areas, M maxDets)
    iou_thrs = list(evaluator.params.iouThrs)
    i50, i75 = iou_thrs.index(0.5), int(np.argmin(np.abs(np.array(iou_thrs) - 0.75)))

    def mean_valid(values: np.ndarray) -> Optional[float]:
        valid = values[values > -1]
        return float(valid.mean()) if valid.size else None

    per_class = {}
    for k, cat_id in enumerate(evaluator.params.catIds):
        name = coco_gt.loadCats(int(cat_id))[0]['name']
        per_class[name] = dict(
            AP=mean_valid(precision[:, :, k, 0, -1]), AP50=mean_valid(precision[i50, :, k, 0, -1]),
            AP75=mean_valid(precision[i75, :, k, 0, -1]),
            pr50=[float(max(v, 0)) for v in precision[i50, :, k, 0, -1]])
    return dict(mAP=float(evaluator.stats[0]), mAP50=float(evaluator.stats[1]),
                recall=[float(r) for r in evaluator.params.recThrs], per_class=per_class)


def analyze_det(cfg: Any, model: torch.nn.Module, loader: Any, out: Path) -> Dict[str, Any]:
    """Per-class AP and precision-recall curves of a detector (COCO evaluation)."""
    from pycocotools.coco import COCO

    dataset = loader.dataset
    import contextlib
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(dataset.ann_file)
    cat_ids = list(dataset.cat_ids)
    detections = []
    for sample in _predict(model, loader):
        pred = sample.pred_instances
        for box, score, label in zip(pred.bboxes.cpu().tolist(), pred.scores.cpu().tolist(),
                                     pred.labels.cpu().tolist()):
            x0, y0, x1, y1 = box
            detections.append(dict(image_id=int(sample.img_id), category_id=cat_ids[label],
                                   bbox=[x0, y0, x1 - x0, y1 - y0], score=float(score)))
    result = coco_per_class(coco_gt, detections)
    rows = [(name, *(v if v is not None else float('nan') for v in
                     (c['AP'], c['AP50'], c['AP75'])))
            for name, c in result['per_class'].items()]
    _write_csv(out / 'per_class_ap.csv', ['class', 'AP', 'AP50', 'AP75'], rows)
    fig = _figure(6, 4.5)
    ax = fig.add_subplot(1, 1, 1)
    for name, c in result['per_class'].items():
        ax.plot(result['recall'], c['pr50'], label=f'{name} (AP50 {c["AP50"] or 0:.2f})')
    ax.set_xlabel('recall')
    ax.set_ylabel('precision')
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f'precision-recall at IoU 0.5 (mAP50 {result["mAP50"]:.3f})')
    fig.tight_layout()
    _save_figure(fig, out / 'pr_curve.png')
    return dict(task='det', images=len(dataset), detections=len(detections), mAP=result['mAP'],
                mAP50=result['mAP50'],
                per_class={n: {k: v for k, v in c.items() if k != 'pr50'}
                           for n, c in result['per_class'].items()})


def analyze_medical(cfg: Any, model: torch.nn.Module, loader: Any, out: Path
                    ) -> Dict[str, Any]:
    """Per-case, per-class Dice and HD95 (mm) of a volumetric segmentation model."""
    from densekit.tasks.medical3d.metrics import dice_score, hd95

    classes = list(loader.dataset.metainfo.get('classes') or [])
    rows, cases = [], []
    for sample in _predict(model, loader):
        pred = np.asarray(sample.pred_seg.cpu().numpy() if torch.is_tensor(sample.pred_seg)
                          else sample.pred_seg)
        gt = np.asarray(sample.gt_seg.cpu().numpy() if torch.is_tensor(sample.gt_seg)
                        else sample.gt_seg)
        spacing = tuple(sample.get('spacing') or (1.0,) * gt.ndim)
        num = len(classes) or int(max(pred.max(), gt.max())) + 1
        case = str(sample.get('case_id', len(cases)))
        entry = dict(case_id=case)
        for c in range(1, num):
            name = classes[c] if classes else str(c)
            entry[f'dice_{name}'] = dice_score(pred == c, gt == c)
            entry[f'hd95_{name}'] = hd95(pred == c, gt == c, spacing)
        dice = [v for k, v in entry.items() if k.startswith('dice_')]
        hds = [v for k, v in entry.items() if k.startswith('hd95_')]
        entry['dice_mean'], entry['hd95_mean'] = float(np.mean(dice)), float(np.mean(hds))
        cases.append(entry)
        rows.append(list(entry.values()))
    if not cases:
        raise ValueError('the split has no cases')
    _write_csv(out / 'per_case.csv', list(cases[0]), rows)
    return dict(task='medical', cases=cases,
                dice=float(np.mean([c['dice_mean'] for c in cases])),
                hd95=float(np.mean([c['hd95_mean'] for c in cases])))


def restoration_crops(lq: np.ndarray, out: np.ndarray, gt: np.ndarray, scale: int,
                      size: int = 48, factor: int = 4, name: str = '') -> np.ndarray:
    """input (nearest) | output | ground truth, zoomed ``factor`` x on the window of the
    largest error of the output."""
    from densekit.analysis.drawing import labelled_row, pick_crop, zoom

    nearest = zoom(lq, scale) if scale > 1 else lq
    y0, x0, y1, x1 = pick_crop(gt, size, out)
    panels = [zoom(np.ascontiguousarray(p[y0:y1, x0:x1]), factor) for p in (nearest, out, gt)]
    label = 'input (nearest)' if scale > 1 else 'input'
    prefix = f'{name}: ' if name else ''
    return labelled_row(panels, [f'{prefix}{label}', 'output', 'ground truth'])


def analyze_restoration(cfg: Any, model: torch.nn.Module, loader: Any, out: Path,
                        max_crops: int = 4) -> Dict[str, Any]:
    """Per-image PSNR / SSIM (Y channel with ``crop_border = scale`` for SR, RGB for
    deraining) and zoomed crops of the images the model restored worst."""
    from densekit.analysis.drawing import png_bytes, stack_rows
    from densekit.tasks.restoration.imresize import imresize
    from densekit.tasks.restoration.inference import restore_array
    from densekit.tasks.restoration.metrics import psnr, ssim
    from densekit.tasks.restoration.transforms import read_rgb

    scale = int(getattr(model, 'scale', 1))
    convert, crop = ('y', scale) if scale > 1 else (None, 0)
    rows, records = [], []
    for info in loader.dataset.data_list:
        lq, gt = read_rgb(info['lq_path']), read_rgb(info['gt_path'])
        gt = gt[:lq.shape[0] * scale, :lq.shape[1] * scale]
        restored = restore_array(model, lq)
        base = imresize(lq, scale) if scale > 1 else lq
        name = Path(info['gt_path']).stem
        scores = (psnr(restored, gt, crop, convert), ssim(restored, gt, crop, convert),
                  psnr(base, gt, crop, convert), ssim(base, gt, crop, convert))
        rows.append((name, *scores))
        records.append((scores[0] - scores[2], name, lq, restored, gt))
    if not rows:
        raise ValueError('the split has no images')
    suffix = '_y' if convert else ''
    baseline = 'bicubic' if scale > 1 else 'input'
    header = ['image', f'psnr{suffix}', f'ssim{suffix}', f'psnr{suffix}_{baseline}',
              f'ssim{suffix}_{baseline}']
    _write_csv(out / 'per_image.csv', header, rows)
    records.sort(key=lambda r: r[0])
    crops = [restoration_crops(lq, restored, gt, scale, name=name)
             for _, name, lq, restored, gt in records[:max_crops]]
    atomic_write_bytes(png_bytes(stack_rows(crops)), str(out / 'crops.png'))
    return dict(task=cfg.get('task'), scale=scale, images=[dict(zip(header, r)) for r in rows],
                psnr=float(np.mean([r[1] for r in rows])),
                ssim=float(np.mean([r[2] for r in rows])),
                psnr_baseline=float(np.mean([r[3] for r in rows])))


ANALYZERS = {'seg': analyze_seg, 'det': analyze_det, 'medical': analyze_medical,
             'sr': analyze_restoration, 'derain': analyze_restoration}


def analyze(config: Any, checkpoint: str, out_dir: Union[str, Path], *, split: str = 'test',
            device: Optional[str] = None, cfg_options: Optional[dict] = None
            ) -> Dict[str, Any]:
    """Analyze ``checkpoint`` on the config's ``split`` and write the files into ``out_dir``.

    Returns the summary (also written to ``out_dir/summary.json``).

    Raises:
        ValueError: An unknown split or task, or a split without the data it needs.
        densekit.checkpoint.CheckpointMismatchError: The weights do not fit the model.
    """
    import densekit  # noqa: F401  (registers densekit's modules)
    from densekit.apis import load_config
    from densekit.inference import build_model, detect_task

    if split not in ('train', 'val', 'test'):
        raise ValueError(f"split={split!r}: expected 'train', 'val' or 'test'")
    cfg = load_config(config, cfg_options)
    task = detect_task(cfg)
    if task not in ANALYZERS:
        raise ValueError(f'task {task!r} of the config has no analysis; known: '
                         f'{sorted(ANALYZERS)}')
    device = device or ('cuda' if torch.cuda.is_available() else 'cpu')
    model = build_model(cfg, checkpoint, device)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    loader = _loader(cfg, split)
    summary = ANALYZERS[task](cfg, model, loader, out)
    summary.update(config=str(getattr(cfg, 'filename', config)), checkpoint=str(checkpoint),
                   split=split)
    atomic_write_text(json.dumps(summary, indent=1), out / 'summary.json')
    return summary


def format_summary(summary: Dict[str, Any]) -> str:
    """A few lines for the terminal: the headline numbers and the per-class / per-case table."""
    task = summary.get('task')
    lines = [f'{summary.get("config")} on {summary.get("split")}: task {task}']
    if task == 'seg':
        lines.append(f'mIoU {summary["mIoU"]}  mAcc {summary["mAcc"]}  aAcc {summary["aAcc"]} '
                     f'({summary["images"]} images)')
        lines += [f'  {name:<16} IoU {summary["IoU"][name]}  Acc {summary["Acc"][name]}'
                  for name in summary['classes']]
    elif task == 'det':
        lines.append(f'mAP {summary["mAP"]:.4f}  mAP50 {summary["mAP50"]:.4f} '
                     f'({summary["images"]} images, {summary["detections"]} detections)')
        lines += [f'  {name:<16} AP {c["AP"]}  AP50 {c["AP50"]}'
                  for name, c in summary['per_class'].items()]
    elif task == 'medical':
        lines.append(f'Dice {summary["dice"]:.4f}  HD95 {summary["hd95"]:.2f} mm '
                     f'({len(summary["cases"])} cases)')
    else:
        lines.append(f'PSNR {summary["psnr"]:.2f} dB (baseline {summary["psnr_baseline"]:.2f}) '
                     f'SSIM {summary["ssim"]:.4f} ({len(summary["images"])} images)')
    return '\n'.join(lines)
