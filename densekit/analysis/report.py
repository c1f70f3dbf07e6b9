"""The demo report: ``<work_dir>/index.html``, one self-contained page (images as base64 PNG).

For each stage of ``densekit demo`` it shows the metrics beside the quality gate, the seconds
taken, the training curve (from the stage's ``scalars.json``) and pictures large enough to judge,
drawn from the stage's own outputs (its ``config.py``, final checkpoint and, for the medical
stage, the segmented test volume):

* **seg** - image | ground truth | prediction for held-out images, with the class colour legend;
* **det** - predicted boxes with class names and scores;
* **sr / derain** - zoomed crops of input, output and ground truth side by side;
* **medical** - axial / coronal / sagittal overlays of the ground truth and the prediction.

A stage whose pictures cannot be drawn gets a note saying why instead; a stage that did not run
is listed as missing. Opening the page needs nothing but a browser.
"""
from __future__ import annotations

import base64
import html
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from densekit.analysis.drawing import (
    colourise,
    draw_boxes,
    labelled_row,
    legend,
    png_bytes,
    stack_rows,
    zoom,
)
from densekit.fileio import atomic_write_text
from densekit.palette import LABEL_COLOURS, box_palette, class_palette

__all__ = ['Gate', 'GATES', 'STAGE_TITLES', 'write_report', 'stage_pictures']

Picture = Tuple[str, np.ndarray]  # (caption, RGB picture)


@dataclass(frozen=True)
class Gate:
    """A stage's quality bar: ``value(metrics) >= threshold``."""

    label: str
    value: Callable[[Dict[str, float]], float]
    threshold: float
    unit: str = ''


GATES: Dict[str, Gate] = {
    'seg': Gate('mIoU', lambda m: m['mIoU'], 80.0),
    'sr': Gate('PSNR-Y gain over bicubic', lambda m: m['psnr_y'] - m['psnr_y_bicubic'], 1.0,
               ' dB'),
    'derain': Gate('PSNR gain over the rainy input', lambda m: m['psnr'] - m['psnr_input'],
                   4.0, ' dB'),
    'det': Gate('bbox mAP@0.5', lambda m: m['bbox_mAP_50'], 0.80),
    'medical': Gate('mean foreground Dice', lambda m: m['dice'], 0.85),
}
STAGE_TITLES = {'seg': 'Segmentation: Semantic FPN on built-in shapes',
                'sr': 'Super-resolution x2: EDSR on built-in photos',
                'derain': 'Deraining: residual U-Net on built-in photos',
                'det': 'Detection: RetinaNet + densekit.FPN on built-in shapes',
                'medical': 'Medical 3D: residual U-Net on MR phantoms'}


# -- pictures drawn from a stage's outputs -------------------------------------------------------
def _stage_model(stage_dir: Path) -> Tuple[Any, Any]:
    """The stage's config (``config.py``) and its final model, loaded strictly."""
    import torch
    from mmengine.config import Config

    from densekit.inference import build_model

    config = stage_dir / 'config.py'
    pointer = stage_dir / 'last_checkpoint'
    if not config.is_file() or not pointer.is_file():
        raise FileNotFoundError(f'{stage_dir} has no config.py and last_checkpoint')
    checkpoint = pointer.read_text().strip()
    if not Path(checkpoint).is_file():
        checkpoint = str(stage_dir / Path(checkpoint).name)
    cfg = Config.fromfile(str(config))
    device = 'cuda' if torch.cuda.is_available() else 'cpu'
    return cfg, build_model(cfg, checkpoint, device)


def _test_samples(cfg: Any, model: Any, count: int) -> List[Any]:
    import torch
    from mmengine.runner import Runner

    loader = Runner.build_dataloader(cfg.test_dataloader)
    out: List[Any] = []
    with torch.no_grad():
        for batch in loader:
            out.extend(model.test_step(batch))
            if len(out) >= count:
                break
    return out[:count]


def _read_rgb(path: str) -> np.ndarray:
    import cv2

    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise OSError(f'cannot read image {path}')
    return image[..., ::-1].copy()


def seg_pictures(stage_dir: Path, count: int = 4, min_size: int = 256) -> List[Picture]:
    """Held-out images: image | ground truth | prediction, and the class legend."""

    cfg, model = _stage_model(stage_dir)
    names = list(model.dataset_meta.get('classes') or [])
    head = model.decode_head
    palette = class_palette(int(head.num_classes), model.dataset_meta.get('palette'))
    rows = []
    for sample in _test_samples(cfg, model, count):
        image = _read_rgb(sample.img_path)
        f = max(1, -(-min_size // image.shape[0]))
        gt = sample.gt_sem_seg.data[0].cpu().numpy()
        pred = sample.pred_sem_seg.data[0].cpu().numpy()
        iou_name = Path(sample.img_path).name
        rows.append(labelled_row([zoom(image, f), zoom(colourise(gt, palette), f),
                                  zoom(colourise(pred, palette), f)],
                                 [f'image {iou_name}', 'ground truth', 'prediction']))
    names = names or [str(c) for c in range(len(palette))]
    rows.append(legend(names, palette, width=rows[0].shape[1]))
    return [('held-out images, their ground truth and the prediction (legend: class '
             'colours)', stack_rows(rows))]


def det_pictures(stage_dir: Path, count: int = 4, score_thr: float = 0.3,
                 factor: int = 2) -> List[Picture]:
    """Held-out images with the predicted boxes, class names and scores."""
    cfg, model = _stage_model(stage_dir)
    names = list(model.dataset_meta.get('classes') or [])
    palette = box_palette(len(names))
    panels, captions = [], []
    for sample in _test_samples(cfg, model, count):
        pred = sample.pred_instances
        keep = pred.scores >= score_thr
        image = zoom(_read_rgb(sample.img_path), factor)
        boxes = pred.bboxes[keep].cpu().numpy() * factor
        panels.append(draw_boxes(image, boxes, pred.labels[keep].tolist(), names, palette,
                                 scores=pred.scores[keep].tolist(), font_scale=0.5))
        captions.append(f'{Path(sample.img_path).name}: {int(keep.sum())} boxes')
    rows = [labelled_row(panels[i:i + 2], captions[i:i + 2]) for i in range(0, len(panels), 2)]
    return [(f'predicted boxes with score >= {score_thr} on held-out images', stack_rows(rows))]


def restoration_pictures(stage_dir: Path, count: int = 3) -> List[Picture]:
    """Zoomed crops (4x, the window of the largest output error) of input | output | GT."""
    from densekit.analysis.evaluate import restoration_crops
    from densekit.tasks.restoration.inference import restore_array
    from densekit.tasks.restoration.transforms import read_rgb

    cfg, model = _stage_model(stage_dir)
    from densekit.registry import DATASETS

    data_list = DATASETS.build(cfg.test_dataloader.dataset).data_list
    scale = int(getattr(model, 'scale', 1))
    rows = []
    for info in data_list[:count]:
        lq, gt = read_rgb(info['lq_path']), read_rgb(info['gt_path'])
        gt = gt[:lq.shape[0] * scale, :lq.shape[1] * scale]
        rows.append(restoration_crops(lq, restore_array(model, lq), gt, scale,
                                      name=Path(info['gt_path']).stem))
    return [('held-out photos: 48-pixel windows where the output differs most from the ground '
             'truth, enlarged 4x', stack_rows(rows))]


def medical_pictures(stage_dir: Path) -> List[Picture]:
    """The segmented test phantom: three planes with the ground truth and the prediction."""
    import nibabel as nib
    from mmengine.config import Config

    from densekit.tasks.medical3d.viz import render_slices

    predictions = sorted((stage_dir / 'predictions').glob('*_seg.nii*'))
    if not predictions:
        raise FileNotFoundError(f'no segmented test volume in {stage_dir / "predictions"}')
    cfg = Config.fromfile(str(stage_dir / 'config.py'))
    root = Path(cfg.test_dataloader.dataset.data_root)
    pictures = []
    for pred_path in predictions[:1]:
        case = pred_path.name.split('_seg.nii')[0]
        image_path = next(iter(sorted((root / 'imagesTs').glob(f'{case}_0000.nii*'))), None)
        label_path = next(iter(sorted((root / 'labelsTs').glob(f'{case}.nii*'))), None)
        if image_path is None:
            raise FileNotFoundError(f'no image of case {case} under {root / "imagesTs"}')
        image = nib.load(str(image_path))
        volume = np.asarray(image.get_fdata(dtype=np.float32))
        pred = np.asarray(nib.load(str(pred_path)).dataobj).astype(np.int64)
        rows = []
        centre = None
        if label_path is not None:  # slice both through the ground truth's centroid
            from densekit.tasks.medical3d.preprocess import to_canonical

            truth = np.asarray(nib.load(str(label_path)).dataobj).astype(np.int64)
            foreground = np.argwhere(to_canonical(truth, image.affine)[0] > 0)
            centre = foreground.mean(0).round().astype(int) if len(foreground) else None
            rows.append(labelled_row([render_slices(volume, truth, image.affine, centre=centre,
                                                    height=300)[..., ::-1].copy()],
                                     [f'{case}: ground truth (axial | coronal | sagittal)']))
        rows.append(labelled_row([render_slices(volume, pred, image.affine, centre=centre,
                                                height=300)[..., ::-1].copy()],
                                 [f'{case}: prediction']))
        classes = ['background', 'organ', 'lesion']
        rows.append(legend(classes, LABEL_COLOURS, width=rows[0].shape[1]))
        pictures.append((f'held-out test phantom {case}, first channel, label overlay',
                         stack_rows(rows)))
    return pictures


STAGE_PICTURES: Dict[str, Callable[[Path], List[Picture]]] = {
    'seg': seg_pictures, 'det': det_pictures, 'sr': restoration_pictures,
    'derain': restoration_pictures, 'medical': medical_pictures}


def stage_pictures(stage: str, stage_dir: Path) -> List[Picture]:
    """The pictures of one stage (see the module docstring)."""
    if stage not in STAGE_PICTURES:
        raise ValueError(f'stage={stage!r}: expected one of {sorted(STAGE_PICTURES)}')
    return STAGE_PICTURES[stage](stage_dir)


# -- the page ------------------------------------------------------------------------------------
def _img(data: bytes, alt: str, css: str = '') -> str:
    encoded = base64.b64encode(data).decode('ascii')
    return (f'<img class="{css}" alt="{html.escape(alt)}" '
            f'src="data:image/png;base64,{encoded}">')


def _metrics_table(stage: str, metrics: Dict[str, float]) -> str:
    rows = []
    gate = GATES.get(stage)
    if gate is not None:
        try:
            value = float(gate.value(metrics))
        except (KeyError, TypeError):
            value = float('nan')
        passed = value >= gate.threshold
        verdict = 'pass' if passed else 'below the gate'
        css = 'pass' if passed else 'fail'
        rows.append(f'<tr class="gate {css}"><th>gate: {html.escape(gate.label)}</th>'
                    f'<td>{value:.3f}{gate.unit}</td><td>&ge; {gate.threshold:g}{gate.unit} '
                    f'&rarr; <b>{verdict}</b></td></tr>')
    for name, value in metrics.items():
        if name == 'seconds':
            continue
        text = f'{value:.4g}' if isinstance(value, (int, float)) else html.escape(str(value))
        rows.append(f'<tr><th>{html.escape(name)}</th><td>{text}</td><td></td></tr>')
    return '<table class="metrics">' + ''.join(rows) + '</table>'


# the curves worth a glance per stage (those the log has): the loss and the gated metric
CURVE_KEYS = {'seg': ('loss', 'mIoU'), 'det': ('loss', 'coco/bbox_mAP_50'),
              'sr': ('loss', 'psnr_y'), 'derain': ('loss', 'psnr'), 'medical': ('loss', 'dice')}


def _curve(stage_dir: Path, stage: str) -> Tuple[Optional[bytes], str]:
    from densekit.analysis.curves import find_scalars, plot_curves, read_scalars

    try:
        series = read_scalars(find_scalars(stage_dir))
        logged = set(series['train']) | set(series['val'])
        keys = [k for k in CURVE_KEYS.get(stage, ()) if k in logged] or None
        return plot_curves(series, keys, title=f'{stage}: training curve',
                           panel_size=(5.0, 3.4)), ''
    except (OSError, ValueError) as err:
        return None, f'no training curve: {err}'


def _stage_html(stage: str, stage_dir: Path, metrics: Optional[Dict[str, float]]) -> str:
    title = STAGE_TITLES.get(stage, stage)
    if metrics is None:
        return (f'<section class="stage missing" id="stage-{stage}" data-stage="{stage}">'
                f'<h2>{html.escape(title)}</h2><p class="note">This stage did not run (run '
                f'<code>densekit demo --task {stage}</code>).</p></section>')
    seconds = metrics.get('seconds')
    parts = [f'<section class="stage" id="stage-{stage}" data-stage="{stage}">',
             f'<h2>{html.escape(title)}</h2>',
             f'<p class="seconds">{seconds:.0f} s for the stage (data, training, evaluation)</p>'
             if isinstance(seconds, (int, float)) else '',
             '<div class="row">', _metrics_table(stage, metrics)]
    curve, why = _curve(stage_dir, stage)
    parts.append(_img(curve, f'{stage} training curve', 'curve') if curve else
                 f'<p class="note">{html.escape(why)}</p>')
    parts.append('</div>')
    start = time.perf_counter()
    try:
        pictures = stage_pictures(stage, stage_dir)
    except Exception as err:  # the page must still come out; say what went wrong
        pictures = []
        parts.append(f'<p class="note">pictures unavailable: {html.escape(type(err).__name__)}: '
                     f'{html.escape(str(err))}</p>')
    for caption, picture in pictures:
        parts.append(f'<figure>{_img(png_bytes(picture), caption, "picture")}'
                     f'<figcaption>{html.escape(caption)}</figcaption></figure>')
    parts.append(f'<!-- pictures drawn in {time.perf_counter() - start:.1f} s --></section>')
    return '\n'.join(parts)


STYLE = """
body { font-family: system-ui, sans-serif; margin: 24px; color: #222; max-width: 1500px; }
h1 { margin-bottom: 4px; } h2 { margin-top: 36px; border-bottom: 2px solid #ddd; }
.row { display: flex; gap: 24px; align-items: flex-start; flex-wrap: wrap; }
table.metrics { border-collapse: collapse; font-size: 14px; }
table.metrics th, table.metrics td { padding: 3px 10px; border-bottom: 1px solid #eee;
  text-align: left; }
tr.gate.pass td, tr.gate.pass th { background: #e6f4ea; }
tr.gate.fail td, tr.gate.fail th { background: #fde8e8; }
img.curve { max-width: 900px; border: 1px solid #eee; }
img.picture { border: 1px solid #eee; image-rendering: pixelated; max-width: 100%; }
figure { margin: 16px 0; } figcaption { font-size: 13px; color: #555; }
.note { color: #a33; } .missing h2 { color: #a33; }
"""

# marks every image after load; a headless browser's --dump-dom shows the result
CHECK_SCRIPT = """
window.addEventListener('load', function () {
  var images = document.querySelectorAll('img'), ok = 0;
  images.forEach(function (img) {
    var loaded = img.complete && img.naturalWidth > 0;
    img.setAttribute('data-loaded', loaded ? '1' : '0');
    if (loaded) { ok += 1; }
  });
  var check = document.getElementById('image-check');
  check.textContent = ok + ' of ' + images.length + ' images loaded';
  check.setAttribute('data-ok', ok === images.length ? '1' : '0');
});
"""


def write_report(work_dir: Any, summary: Optional[Dict[str, Dict[str, float]]] = None,
                 stages: Sequence[str] = ('seg', 'sr', 'derain', 'det', 'medical')) -> Path:
    """Write ``<work_dir>/index.html`` for ``stages`` (their dirs are ``<work_dir>/<stage>``).

    ``summary`` defaults to ``<work_dir>/summary.json``. Returns the page's path.

    Raises:
        FileNotFoundError: No summary given and no ``summary.json`` in ``work_dir``.
    """
    root = Path(work_dir)
    if summary is None:
        path = root / 'summary.json'
        if not path.is_file():
            raise FileNotFoundError(f'no summary.json in {root}: run densekit demo first')
        summary = json.loads(path.read_text())
    sections = [_stage_html(stage, root / stage, summary.get(stage)) for stage in stages]
    ran = [s for s in stages if s in summary]
    total = sum(float(summary[s].get('seconds', 0)) for s in ran)
    page = ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<title>densekit demo report</title>'
            f'<style>{STYLE}</style><script>{CHECK_SCRIPT}</script></head><body>'
            '<h1>densekit demo report</h1>'
            f'<p>{len(ran)} of {len(stages)} stages ran ({", ".join(ran) or "none"}), '
            f'{total / 60:.1f} min in all; written {time.strftime("%Y-%m-%d %H:%M")}. '
            'Everything on this page is embedded: the file can be mailed or archived as is.</p>'
            '<p id="image-check" data-ok="">images not checked yet</p>'
            + '\n'.join(sections) + '</body></html>\n')
    out = root / 'index.html'
    atomic_write_text(page, out)
    return out
