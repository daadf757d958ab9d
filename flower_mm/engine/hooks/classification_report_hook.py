"""Explain a test run: per-class table, JSON report, confusion-matrix PNG."""
import logging
from typing import Optional

from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmpretrain.registry import HOOKS

from flower_mm.evaluation import (build_classification_report,
                                  format_classification_report,
                                  write_classification_report)


@HOOKS.register_module()
class ClassificationReportHook(Hook):
    """After testing, log a per-class report and write it to the work dir.

    It reads what the ``test_evaluator`` computed (``Accuracy``,
    ``SingleLabelMetric(average=None)``, ``ConfusionMatrix`` from
    MMPretrain) and writes ``classification_report.json`` and
    ``confusion_matrix.png``. Being a hook, it works with any tool that runs
    ``Runner.test()``: ours and MMPretrain's ``tools/test.py``.

    Args:
        out_dir (str, optional): Where to write; the runner's work dir when
            None.
        json_name (str): File name of the JSON report.
        png_name (str): File name of the confusion-matrix heat map.
    """

    # After LoggerHook (BELOW_NORMAL), so the report follows its summary line.
    priority = 'LOW'

    def __init__(self,
                 out_dir: Optional[str] = None,
                 json_name: str = 'classification_report.json',
                 png_name: str = 'confusion_matrix.png'):
        self.out_dir = out_dir
        self.json_name = json_name
        self.png_name = png_name

    def after_test_epoch(self, runner, metrics: Optional[dict] = None):
        if not metrics or not is_main_process():
            return
        try:
            report = build_classification_report(metrics,
                                                 _dataset_classes(runner))
        except ValueError as err:
            # The metrics are already logged; name classes by index rather
            # than fail the whole test run over names.
            print_log(f'ClassificationReportHook: {err}', logger='current',
                      level=logging.WARNING)
            report = build_classification_report(metrics)
        expected = {
            'per_class': 'per-class metrics (SingleLabelMetric with '
            'average=None and items precision, recall, f1-score, support)',
            'confusion_matrix': 'ConfusionMatrix',
        }
        missing = [what for key, what in expected.items() if key not in report]
        if len(missing) == 2:
            # e.g. MMPretrain's confusion_matrix.py sets another evaluator.
            print_log(
                'ClassificationReportHook: test_evaluator computed neither '
                'per-class metrics nor a confusion matrix; no report written.'
                ' Add dict(type="SingleLabelMetric", average=None) and '
                'dict(type="ConfusionMatrix") to test_evaluator.',
                logger='current')
            return
        out_dir = self.out_dir or runner.work_dir
        written = write_classification_report(report, out_dir,
                                              self.json_name, self.png_name)
        text = format_classification_report(report)
        if missing:
            text += ('\n(not computed: ' + '; '.join(missing) +
                     ' - add it to test_evaluator)')
        print_log(
            'Classification report:\n' + text + '\nWritten: ' +
            ', '.join(written.values()),
            logger='current')


def _dataset_classes(runner):
    try:
        return runner.test_dataloader.dataset.metainfo.get('classes')
    except AttributeError:
        return None
