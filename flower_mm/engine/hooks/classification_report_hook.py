"""Explain a test run: per-class table, JSON report, confusion-matrix PNG,
and the misclassified images."""
import logging
from typing import Optional, Sequence

from mmengine.dist import all_gather_object, is_main_process
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmpretrain.registry import HOOKS

from flower_mm.evaluation import (build_classification_report,
                                  format_classification_report,
                                  misclassified_record,
                                  write_classification_report,
                                  write_misclassified)


@HOOKS.register_module()
class ClassificationReportHook(Hook):
    """After testing, log a per-class report and write it to the work dir.

    It reads what the ``test_evaluator`` computed (``Accuracy``,
    ``SingleLabelMetric(average=None)``, ``ConfusionMatrix`` from
    MMPretrain) and writes ``classification_report.json`` and
    ``confusion_matrix.png``. It also collects the images the model got
    wrong and writes them to ``misclassified.csv`` (all, most confident
    first) and ``misclassified.png`` (the first ``max_misclassified``,
    captioned with true class, predicted class and score). Being a hook, it
    works with any tool that runs ``Runner.test()``: ours and MMPretrain's
    ``tools/test.py``.

    Args:
        out_dir (str, optional): Where to write; the runner's work dir when
            None.
        json_name (str): File name of the JSON report.
        png_name (str): File name of the confusion-matrix heat map.
        max_misclassified (int): Images in the gallery of mistakes; 0
            writes neither the gallery nor its CSV.
        misclassified_png (str): File name of that gallery.
        misclassified_csv (str): File name of the list of mistakes.
    """

    # After LoggerHook (BELOW_NORMAL), so the report follows its summary line.
    priority = 'LOW'

    def __init__(self,
                 out_dir: Optional[str] = None,
                 json_name: str = 'classification_report.json',
                 png_name: str = 'confusion_matrix.png',
                 max_misclassified: int = 25,
                 misclassified_png: str = 'misclassified.png',
                 misclassified_csv: str = 'misclassified.csv'):
        self.out_dir = out_dir
        self.json_name = json_name
        self.png_name = png_name
        self.max_misclassified = max_misclassified
        self.misclassified_png = misclassified_png
        self.misclassified_csv = misclassified_csv
        self._mistakes, self._tested = {}, set()

    def before_test_epoch(self, runner):
        self._mistakes, self._tested = {}, set()

    def after_test_iter(self,
                        runner,
                        batch_idx: int,
                        data_batch=None,
                        outputs: Optional[Sequence] = None):
        for data_sample in outputs or ():
            if 'gt_label' not in data_sample:
                continue
            # Keyed by sample: a distributed sampler pads with repeats.
            key = data_sample.get('sample_idx', data_sample.get('img_path'))
            self._tested.add(key)
            record = misclassified_record(data_sample)
            if record is not None:
                self._mistakes[key] = record

    def after_test_epoch(self, runner, metrics: Optional[dict] = None):
        if self.max_misclassified > 0:
            # Every rank saw part of the test set.
            mistakes, tested = {}, set()
            for part in all_gather_object((self._mistakes, self._tested)):
                mistakes.update(part[0])
                tested |= part[1]
            mistakes, num_tested = list(mistakes.values()), len(tested)
        if not is_main_process():
            return
        if metrics:
            self._write_report(runner, metrics)
        if self.max_misclassified > 0 and num_tested:
            self._write_misclassified(runner, mistakes, num_tested)

    def _write_report(self, runner, metrics: dict):
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

    def _write_misclassified(self, runner, mistakes, num_tested):
        classes = _dataset_classes(runner)
        num_classes = 1 + max(
            max(r['gt_label'], r['pred_label']) for r in mistakes) \
            if mistakes else 0
        if not classes or len(classes) < num_classes:
            classes = [str(i) for i in range(num_classes)]
        written = write_misclassified(
            mistakes, self.out_dir or runner.work_dir, classes, num_tested,
            self.max_misclassified, self.misclassified_png,
            self.misclassified_csv)
        if mistakes:
            text = (f'{len(mistakes)} of {num_tested} test images '
                    'misclassified')
        else:
            text = f'No misclassified images: all {num_tested} are right'
        print_log(f'{text}. Written: {written["png"]}, {written["csv"]}',
                  logger='current')


def _dataset_classes(runner):
    try:
        return runner.test_dataloader.dataset.metainfo.get('classes')
    except AttributeError:
        return None
