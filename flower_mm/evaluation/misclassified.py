"""The test images a model got wrong: a CSV list and a picture gallery."""
import csv
import os
import os.path as osp
from typing import List, Optional, Sequence

MISCLASSIFIED_FIELDS = ('rank', 'img_path', 'true_class', 'pred_class',
                        'pred_score', 'true_class_score')


def misclassified_record(data_sample) -> Optional[dict]:
    """What to keep of one of MMPretrain's predicted ``DataSample``: None
    when it is right (or has no label), else its path, labels and scores."""
    if 'gt_label' not in data_sample or 'pred_score' not in data_sample:
        return None
    gt = int(data_sample.gt_label[0])
    scores = data_sample.pred_score.float().cpu()
    pred = int(scores.argmax())
    if pred == gt:
        return None
    return dict(
        img_path=data_sample.get('img_path'),
        gt_label=gt,
        pred_label=pred,
        pred_score=float(scores[pred]),
        true_class_score=float(scores[gt]))


def sort_misclassified(records: Sequence[dict]) -> List[dict]:
    """Most confident mistakes first; ties by path, for stable output."""
    return sorted(records,
                  key=lambda r: (-r['pred_score'], str(r['img_path'])))


def write_misclassified(records: Sequence[dict],
                        out_dir: str,
                        classes: Sequence[str],
                        num_images: int,
                        max_images: int = 25,
                        png_name: str = 'misclassified.png',
                        csv_name: str = 'misclassified.csv') -> dict:
    """Write every mistake to ``csv_name`` and the ``max_images`` most
    confident ones, captioned, to ``png_name``.

    Args:
        records: From :func:`misclassified_record`, in any order.
        classes: Class names in label order.
        num_images: How many images were tested.

    Returns:
        dict: ``csv`` and ``png`` file paths.
    """
    from flower_mm.transforms import ImageDecodeError, decode_to_bgr
    from flower_mm.visualization import plot_misclassified

    os.makedirs(out_dir, exist_ok=True)
    records = sort_misclassified(records)
    csv_file = osp.join(out_dir, csv_name)
    with open(csv_file, 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(MISCLASSIFIED_FIELDS)
        for rank, r in enumerate(records, 1):
            writer.writerow([
                rank, r['img_path'], classes[r['gt_label']],
                classes[r['pred_label']], f'{r["pred_score"]:.4f}',
                f'{r["true_class_score"]:.4f}'
            ])
    shown = []
    for r in records[:max_images]:
        try:
            with open(r['img_path'], 'rb') as f:
                img = decode_to_bgr(f.read(), r['img_path'])[..., ::-1]
        except (OSError, TypeError, ImageDecodeError):
            continue  # listed in the CSV; nothing to show
        shown.append(
            dict(img=img, gt_class=classes[r['gt_label']],
                 pred_class=classes[r['pred_label']],
                 pred_score=r['pred_score']))
    png_file = plot_misclassified(shown, osp.join(out_dir, png_name),
                                  num_wrong=len(records),
                                  num_images=num_images)
    return dict(csv=csv_file, png=png_file)
