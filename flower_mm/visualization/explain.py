"""Pictures that explain predictions: a CAM figure, a gallery of mistakes."""
import math
import os
import os.path as osp
from typing import Optional, Sequence

import numpy as np


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, out_file: str) -> str:
    out_dir = osp.dirname(out_file)
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
    fig.savefig(out_file, bbox_inches='tight')
    return out_file


def overlay_heatmap(image: np.ndarray,
                    heatmap: np.ndarray,
                    image_weight: float = 0.5) -> np.ndarray:
    """``heatmap`` in the jet colour map blended over the RGB ``image``
    (both as :func:`flower_mm.apis.compute_cam` returns them); RGB
    ``uint8``."""
    from pytorch_grad_cam.utils.image import show_cam_on_image
    return show_cam_on_image(
        image.astype(np.float32) / 255, heatmap, use_rgb=True,
        image_weight=image_weight)


def plot_cam(result: dict, out_file: str, title: str = '',
             method: str = 'gradcam') -> str:
    """The model's view of a photo beside its CAM overlay, as PNG.

    Args:
        result (dict): One item of :func:`flower_mm.apis.compute_cam`.
        title (str): First caption line, e.g. the file name.
    """
    fig = _figure(8, 4.6)
    left, right = fig.subplots(1, 2)
    left.imshow(result['image'], interpolation='nearest')
    left.set_title('photo as the model sees it', fontsize=10)
    right.imshow(
        overlay_heatmap(result['image'], result['heatmap']),
        interpolation='bilinear')
    right.set_title(f'{method} for "{result["target_class"]}"',
                    fontsize=10)
    for ax in (left, right):
        ax.axis('off')
    caption = (f'predicted: {result["pred_class"]} '
               f'({result["pred_score"]:.1%})')
    if result['target_label'] != result['pred_label']:
        caption += f'   explained: {result["target_class"]}'
    fig.suptitle('\n'.join(filter(None, [title, caption])), fontsize=11)
    return _save(fig, out_file)


def plot_misclassified(records: Sequence[dict],
                       out_file: str,
                       num_wrong: Optional[int] = None,
                       num_images: Optional[int] = None) -> str:
    """A grid of wrongly classified photos, as PNG.

    Args:
        records: Dicts with ``img`` (RGB array), ``gt_class``,
            ``pred_class`` and ``pred_score``, in display order. Empty: the
            picture says that nothing was wrong.
        num_wrong: How many were wrong in all (``records`` may be the
            first of them), for the title.
        num_images: How many images were tested, for the title.
    """
    if not records:
        fig = _figure(6, 1.2)
        if num_wrong:
            text = f'{num_wrong} misclassified; no file could be read.'
        else:
            total = f' (all {num_images} right)' if num_images else ''
            text = f'No misclassified images{total}.'
        fig.text(0.5, 0.5, text, ha='center', va='center', fontsize=14)
        return _save(fig, out_file)
    cols = min(5, len(records))
    rows = math.ceil(len(records) / cols)
    fig = _figure(2.6 * cols, 2.9 * rows + 0.5)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for ax in axes:
        ax.axis('off')
    for ax, rec in zip(axes, records):
        ax.imshow(rec['img'])
        ax.set_title(
            f'true: {rec["gt_class"]}\npred: {rec["pred_class"]} '
            f'{rec["pred_score"]:.0%}',
            fontsize=9,
            color='firebrick')
    num_wrong = num_wrong or len(records)
    title = f'{num_wrong} misclassified'
    if num_images:
        title += f' of {num_images} images'
    if num_wrong > len(records):
        title += f', the {len(records)} most confident mistakes'
    fig.suptitle(title + ' (most confident first)', fontsize=12)
    return _save(fig, out_file)
