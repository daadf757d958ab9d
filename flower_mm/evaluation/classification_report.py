"""Per-class report of a test run, from MMPretrain's metric results.

The numbers come from MMPretrain's metrics as configured in the flower
``test_evaluator``: ``Accuracy`` (top-1), ``SingleLabelMetric`` with
``average=None`` (per-class precision, recall, F1 and support) and
``ConfusionMatrix``. This module only arranges them: a dict for JSON, a
text table, and a confusion-matrix heat map.
"""
import json
import os.path as osp
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from flower_mm.utils import format_table

PER_CLASS_ITEMS = ('precision', 'recall', 'f1-score', 'support')


def build_classification_report(
        metrics: dict,
        classes: Optional[Sequence[str]] = None,
        accuracy_key: str = 'accuracy/top1',
        single_label_prefix: str = 'single-label',
        confusion_matrix_key: str = 'confusion_matrix/result') -> dict:
    """Gather accuracy, per-class metrics and the confusion matrix.

    Args:
        metrics (dict): What ``Evaluator.evaluate`` / ``runner.test()``
            returns. Precision, recall, F1 and accuracy are percentages, as
            MMPretrain reports them.
        classes (Sequence[str], optional): Class names in label order;
            label indices when not given.

    Returns:
        dict: JSON-serialisable report. Keys that the metrics did not
        provide (e.g. no ``SingleLabelMetric`` in the evaluator) are absent.
    """
    report = {'unit': 'percent'}
    per_class = {
        item: metrics.get(f'{single_label_prefix}/{item}_classwise')
        for item in PER_CLASS_ITEMS
    }
    matrix = metrics.get(confusion_matrix_key)
    if matrix is not None:
        matrix = torch.as_tensor(matrix).long()
    num_classes = (len(per_class['precision']) if per_class['precision']
                   is not None else matrix.shape[0] if matrix is not None
                   else len(classes or ()))
    classes = [str(c) for c in classes] if classes \
        else [str(i) for i in range(num_classes)]
    if num_classes and len(classes) != num_classes:
        raise ValueError(
            f'The metrics cover {num_classes} classes but the dataset names '
            f'{len(classes)} ({classes}); check model.head.num_classes.')
    report['classes'] = classes

    if metrics.get(accuracy_key) is not None:
        report['accuracy'] = float(metrics[accuracy_key])
    elif matrix is not None and matrix.sum() > 0:
        report['accuracy'] = float(matrix.trace() / matrix.sum() * 100)

    if all(v is not None for v in per_class.values()):
        support = [int(s) for s in per_class['support']]
        report['num_samples'] = sum(support)
        report['per_class'] = {
            name: {
                'precision': float(per_class['precision'][i]),
                'recall': float(per_class['recall'][i]),
                'f1-score': float(per_class['f1-score'][i]),
                'support': support[i],
            }
            for i, name in enumerate(classes)
        }
        weights = np.asarray(support, dtype=np.float64)
        for avg, w in (('macro_avg', np.ones_like(weights)),
                       ('weighted_avg', weights)):
            report[avg] = {
                item: float(np.average(per_class[item], weights=w))
                if w.sum() > 0 else 0.0
                for item in ('precision', 'recall', 'f1-score')
            }
            report[avg]['support'] = sum(support)

    if matrix is not None:
        report.setdefault('num_samples', int(matrix.sum()))
        report['confusion_matrix'] = {
            'rows': 'true class',
            'columns': 'predicted class',
            'counts': matrix.tolist(),
        }
        report['most_confused'] = most_confused_pairs(matrix, classes)
    return report


def most_confused_pairs(matrix: torch.Tensor, classes: Sequence[str],
                        limit: int = 3) -> List[dict]:
    """The largest off-diagonal cells: where the model fails most."""
    off_diagonal = matrix.clone()
    off_diagonal.fill_diagonal_(0)
    pairs = []
    for flat in torch.argsort(off_diagonal.flatten(), descending=True,
                              stable=True)[:limit].tolist():
        true, pred = divmod(flat, matrix.shape[1])
        count = int(off_diagonal[true, pred])
        if count == 0:
            break
        pairs.append({
            'true': classes[true],
            'predicted': classes[pred],
            'count': count,
            'share_of_true_class': count / max(int(matrix[true].sum()), 1)
            * 100,
        })
    return pairs


def format_classification_report(report: dict) -> str:
    """A readable table, laid out like scikit-learn's report."""
    lines = []
    if 'per_class' in report:
        rows = [[
            name, f'{m["precision"]:.2f}', f'{m["recall"]:.2f}',
            f'{m["f1-score"]:.2f}', m['support']
        ] for name, m in report['per_class'].items()]
        rows.append(['', '', '', '', ''])
        if 'accuracy' in report:
            rows.append([
                'accuracy (top-1)', '', '', f'{report["accuracy"]:.2f}',
                report['num_samples']
            ])
        for avg in ('macro_avg', 'weighted_avg'):
            m = report[avg]
            rows.append([
                avg.replace('_', ' '), f'{m["precision"]:.2f}',
                f'{m["recall"]:.2f}', f'{m["f1-score"]:.2f}', m['support']
            ])
        lines.append(
            format_table(['class', 'precision %', 'recall %', 'f1-score %',
                          'support'], rows))
    elif 'accuracy' in report:
        lines.append(f'accuracy (top-1): {report["accuracy"]:.2f} % on '
                     f'{report.get("num_samples", "?")} images')
    if 'confusion_matrix' in report:
        classes = report['classes']
        counts = report['confusion_matrix']['counts']
        lines.append('\nconfusion matrix (rows: true class, columns: '
                     'predicted class)')
        lines.append(
            format_table(['true \\ predicted', *classes],
                         [[name, *row] for name, row in zip(classes,
                                                            counts)]))
        if report['most_confused']:
            lines.append('\nmost confused (true -> predicted):')
            lines += [
                f'  {p["true"]} -> {p["predicted"]}: {p["count"]} '
                f'({p["share_of_true_class"]:.1f} % of {p["true"]})'
                for p in report['most_confused']
            ]
    return '\n'.join(lines)


def plot_confusion_matrix(report: dict, out_file: str,
                          cmap: str = 'viridis') -> str:
    """Save the report's confusion matrix as a PNG heat map.

    Drawn by MMPretrain's ``ConfusionMatrix.plot``, with the count in every
    cell and the class names on both axes; the title gives the accuracy.
    """
    import matplotlib.pyplot as plt
    from mmpretrain.evaluation import ConfusionMatrix

    matrix = torch.as_tensor(report['confusion_matrix']['counts'])
    fig = ConfusionMatrix.plot(
        matrix,
        include_values=True,
        cmap=cmap,
        classes=report['classes'],
        show=False)
    try:
        # MMPretrain draws the class names on top; keep their label there.
        fig.axes[0].xaxis.set_label_position('top')
        title = f'Confusion matrix, {report["num_samples"]} images'
        if 'accuracy' in report:
            title += f', top-1 accuracy {report["accuracy"]:.2f} %'
        fig.suptitle(title)
        fig.savefig(out_file, dpi=100, bbox_inches='tight')
    finally:
        plt.close(fig)
    return out_file


def dump_classification_report(report: dict, out_file: str) -> str:
    with open(out_file, 'w') as f:
        json.dump(report, f, indent=2)
        f.write('\n')
    return out_file


def write_classification_report(report: dict, out_dir: str,
                                json_name: str = 'classification_report.json',
                                png_name: str = 'confusion_matrix.png'
                                ) -> Dict[str, str]:
    """Write the JSON report and, given a confusion matrix, its heat map."""
    written = {'json': dump_classification_report(
        report, osp.join(out_dir, json_name))}
    if 'confusion_matrix' in report:
        written['png'] = plot_confusion_matrix(report,
                                               osp.join(out_dir, png_name))
    return written
