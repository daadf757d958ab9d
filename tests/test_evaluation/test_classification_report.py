"""The test-time report: metric values against hand-computed ones."""
import json
from types import SimpleNamespace

import cv2
import pytest
import torch
from conftest import config_path
from mmengine.config import Config
from mmengine.evaluator import Evaluator
from mmpretrain.registry import METRICS
from mmpretrain.structures import DataSample

from flower_mm.datasets import FLOWER_CLASSES
from flower_mm.engine.hooks import ClassificationReportHook
from flower_mm.evaluation import (build_classification_report,
                                  format_classification_report)

# 11 fixed predictions over the 5 classes (0 daisy ... 4 tulip).
Y_TRUE = [0, 0, 0, 1, 1, 2, 2, 2, 2, 3, 4]
Y_PRED = [0, 0, 1, 1, 1, 2, 0, 0, 3, 3, 2]
# Worked out by hand from the lists above (rows: true, columns: predicted).
HAND_MATRIX = [
    [2, 1, 0, 0, 0],
    [0, 2, 0, 0, 0],
    [2, 0, 1, 1, 0],
    [0, 0, 0, 1, 0],
    [0, 0, 1, 0, 0],
]
# precision = correct / predicted as the class (column sums 4, 3, 2, 2, 0;
# tulip is never predicted: 0 by convention), recall = correct / true
# (row sums 3, 2, 4, 1, 1), F1 = 2PR / (P + R).
HAND_PRECISION = [2 / 4, 2 / 3, 1 / 2, 1 / 2, 0.]
HAND_RECALL = [2 / 3, 2 / 2, 1 / 4, 1 / 1, 0.]
HAND_F1 = [4 / 7, 4 / 5, 1 / 3, 2 / 3, 0.]
HAND_SUPPORT = [3, 2, 4, 1, 1]
HAND_ACCURACY = 6 / 11


def fixed_predictions():
    samples = []
    for true, pred in zip(Y_TRUE, Y_PRED):
        score = torch.full((5, ), 0.1)
        score[pred] = 0.6
        samples.append(DataSample().set_gt_label(true).set_pred_score(score))
    return samples


@pytest.fixture(scope='module')
def test_metrics():
    """The flower config's test_evaluator, run on the fixed predictions."""
    cfg = Config.fromfile(config_path('resnet50_flowers.py'))
    evaluator = Evaluator([METRICS.build(m) for m in cfg.test_evaluator])
    evaluator.process(fixed_predictions())
    return evaluator.evaluate(len(Y_TRUE))


def test_report_values_equal_hand_computed(test_metrics):
    report = build_classification_report(test_metrics, FLOWER_CLASSES)

    assert report['classes'] == list(FLOWER_CLASSES)
    assert report['num_samples'] == len(Y_TRUE)
    assert report['accuracy'] == pytest.approx(HAND_ACCURACY * 100)
    assert report['confusion_matrix']['counts'] == HAND_MATRIX
    for i, name in enumerate(FLOWER_CLASSES):
        m = report['per_class'][name]
        assert m['precision'] == pytest.approx(HAND_PRECISION[i] * 100,
                                               abs=1e-4), name
        assert m['recall'] == pytest.approx(HAND_RECALL[i] * 100,
                                            abs=1e-4), name
        assert m['f1-score'] == pytest.approx(HAND_F1[i] * 100,
                                              abs=1e-4), name
        assert m['support'] == HAND_SUPPORT[i]
    macro = report['macro_avg']
    assert macro['precision'] == pytest.approx(
        sum(HAND_PRECISION) / 5 * 100, abs=1e-4)
    assert macro['recall'] == pytest.approx(sum(HAND_RECALL) / 5 * 100,
                                            abs=1e-4)
    assert macro['f1-score'] == pytest.approx(sum(HAND_F1) / 5 * 100,
                                              abs=1e-4)
    weighted_f1 = sum(f * s for f, s in zip(HAND_F1, HAND_SUPPORT)) / 11
    assert report['weighted_avg']['f1-score'] == pytest.approx(
        weighted_f1 * 100, abs=1e-4)
    # The largest off-diagonal cell: 2 of the 4 roses taken for daisies.
    top = report['most_confused'][0]
    assert (top['true'], top['predicted'], top['count']) == ('rose',
                                                             'daisy', 2)
    assert top['share_of_true_class'] == pytest.approx(50.0)


def test_report_table_is_readable(test_metrics):
    text = format_classification_report(
        build_classification_report(test_metrics, FLOWER_CLASSES))
    lines = text.splitlines()
    assert lines[0].split() == [
        'class', 'precision', '%', 'recall', '%', 'f1-score', '%', 'support'
    ]
    rose = next(line for line in lines if line.startswith('rose '))
    assert rose.split() == ['rose', '50.00', '25.00', '33.33', '4']
    accuracy = next(line for line in lines if line.startswith('accuracy'))
    assert accuracy.split()[-2:] == [f'{HAND_ACCURACY * 100:.2f}', '11']
    assert any(line.startswith('macro avg') for line in lines)
    assert '  rose -> daisy: 2 (50.0 % of rose)' in lines


def test_hook_writes_json_and_png(test_metrics, tmp_path):
    runner = SimpleNamespace(
        work_dir=str(tmp_path),
        test_dataloader=SimpleNamespace(dataset=SimpleNamespace(
            metainfo={'classes': FLOWER_CLASSES})))
    ClassificationReportHook().after_test_epoch(runner, test_metrics)

    with open(tmp_path / 'classification_report.json') as f:
        report = json.load(f)
    assert report['confusion_matrix']['counts'] == HAND_MATRIX
    assert report['per_class']['dandelion']['recall'] == pytest.approx(100.)
    png = cv2.imread(str(tmp_path / 'confusion_matrix.png'))
    assert png is not None, 'confusion_matrix.png does not decode'
    height, width = png.shape[:2]
    assert 400 <= height <= 3000 and 400 <= width <= 3000
    assert png.std() > 10  # a drawing, not a blank canvas


def test_hook_without_classwise_metrics_writes_nothing(tmp_path):
    runner = SimpleNamespace(work_dir=str(tmp_path),
                             test_dataloader=None)
    ClassificationReportHook().after_test_epoch(runner,
                                                {'accuracy/top1': 50.0})
    assert not list(tmp_path.iterdir())


def test_class_count_mismatch_is_reported(test_metrics):
    with pytest.raises(ValueError, match='5 classes but the dataset names 2'):
        build_classification_report(test_metrics, ['a', 'b'])


def test_hook_falls_back_to_indices_on_class_mismatch(test_metrics,
                                                      tmp_path):
    runner = SimpleNamespace(
        work_dir=str(tmp_path),
        test_dataloader=SimpleNamespace(dataset=SimpleNamespace(
            metainfo={'classes': ('a', 'b')})))
    ClassificationReportHook().after_test_epoch(runner, test_metrics)
    with open(tmp_path / 'classification_report.json') as f:
        report = json.load(f)
    assert report['classes'] == ['0', '1', '2', '3', '4']
    assert report['confusion_matrix']['counts'] == HAND_MATRIX
