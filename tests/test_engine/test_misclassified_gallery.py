"""ClassificationReportHook's gallery of mistakes, fed predictions directly."""
import csv
from types import SimpleNamespace

import cv2
import numpy as np
import torch
from mmengine.logging import MMLogger
from mmpretrain.structures import DataSample

from flower_mm.engine import ClassificationReportHook

CLASSES = ('daisy', 'dandelion', 'rose')


def predicted(path, gt, scores):
    sample = DataSample(metainfo=dict(img_path=str(path)))
    sample.set_gt_label(gt)
    sample.set_pred_score(torch.tensor(scores))
    return sample


def fake_runner(work_dir):
    dataset = SimpleNamespace(metainfo=dict(classes=CLASSES))
    return SimpleNamespace(work_dir=str(work_dir),
                           test_dataloader=SimpleNamespace(dataset=dataset))


def run_hook(hook, runner, batches):
    hook.before_test_epoch(runner)
    for i, batch in enumerate(batches):
        hook.after_test_iter(runner, i, None, batch)
    hook.after_test_epoch(runner, metrics=None)


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_most_confident_mistakes_first_up_to_the_limit(tmp_path, capsys):
    MMLogger.get_instance('gallery_test')
    rng = np.random.default_rng(0)
    samples = []
    for i in range(9):
        path = tmp_path / f'img_{i}.jpg'
        cv2.imwrite(str(path), rng.integers(0, 255, (40, 50, 3), np.uint8))
        # 0, 3, 6 right; the others wrong with confidence rising with i
        gt = 0 if i % 3 == 0 else 2
        conf = 0.4 + i / 20
        samples.append(
            predicted(path, gt, [conf, (1 - conf) / 2, (1 - conf) / 2]))
    hook = ClassificationReportHook(max_misclassified=4)
    # A distributed sampler pads the last batch with repeats: counted once.
    run_hook(hook, fake_runner(tmp_path),
             [samples[:5], samples[5:] + samples[7:]])

    rows = read_csv(tmp_path / 'misclassified.csv')
    assert [r['img_path'] for r in rows] == [
        str(tmp_path / f'img_{i}.jpg') for i in (8, 7, 5, 4, 2, 1)
    ]
    assert {(r['true_class'], r['pred_class']) for r in rows} == {
        ('rose', 'daisy')
    }
    assert rows[0]['pred_score'] == '0.8000'
    assert rows[0]['true_class_score'] == '0.1000'
    assert '6 of 9 test images misclassified' in capsys.readouterr().out
    gallery = cv2.imread(str(tmp_path / 'misclassified.png'))
    assert gallery is not None and gallery.std() > 10
    # four photos in one row: wider than tall
    assert gallery.shape[1] > 2 * gallery.shape[0]

    # a second test run in the same work dir starts afresh
    hook_all_right = ClassificationReportHook()
    run_hook(hook_all_right, fake_runner(tmp_path), [[samples[0]]])
    assert read_csv(tmp_path / 'misclassified.csv') == []
    assert 'No misclassified images: all 1 are right' in \
        capsys.readouterr().out
    assert cv2.imread(str(tmp_path / 'misclassified.png')) is not None


def test_unlabelled_predictions_write_nothing(tmp_path):
    sample = DataSample(metainfo=dict(img_path='x.jpg'))
    sample.set_pred_score(torch.tensor([0.2, 0.3, 0.5]))
    run_hook(ClassificationReportHook(), fake_runner(tmp_path), [[sample]])
    assert not list(tmp_path.iterdir())
