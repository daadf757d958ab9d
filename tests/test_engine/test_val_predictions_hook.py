"""ValPredictionsHook: each validation's photos, true and predicted classes,
once each, in dataset order, in val_predictions/epoch_<N>.json."""
import json
from types import SimpleNamespace

import torch
from mmpretrain.structures import DataSample

from flower_mm.engine.hooks import ValPredictionsHook, read_val_predictions


def sample(index: int, gt: int, pred: int) -> DataSample:
    return DataSample(metainfo=dict(sample_idx=index,
                                    img_path=f'val/{index}.jpg')) \
        .set_gt_label(gt).set_pred_label(pred).set_pred_score(
            torch.nn.functional.one_hot(torch.tensor(pred), 5).float())


def test_writes_each_photo_once_in_dataset_order(tmp_path):
    hook = ValPredictionsHook()
    runner = SimpleNamespace(work_dir=str(tmp_path), epoch=3)
    hook.before_val_epoch(runner)
    # Two batches out of order, the last padded with a repeat of photo 0,
    # as a distributed sampler does.
    hook.after_val_iter(runner, 0, outputs=[sample(2, 1, 1), sample(3, 4, 0)])
    hook.after_val_iter(runner, 1, outputs=[sample(1, 2, 2), sample(0, 0, 3),
                                            sample(0, 0, 3)])
    hook.after_val_epoch(runner, metrics={'accuracy/top1': 50.0})
    written = json.loads(
        (tmp_path / 'val_predictions' / 'epoch_3.json').read_text())
    assert written == dict(
        epoch=3,
        img_path=[f'val/{i}.jpg' for i in range(4)],
        gt_label=[0, 2, 1, 4],
        pred_label=[3, 2, 1, 0])
    assert read_val_predictions(str(tmp_path)) == {3: written}

    # The next validation starts afresh.
    runner.epoch = 4
    hook.before_val_epoch(runner)
    hook.after_val_iter(runner, 0, outputs=[sample(0, 0, 0)])
    hook.after_val_epoch(runner)
    assert read_val_predictions(str(tmp_path))[4]['pred_label'] == [0]
    assert read_val_predictions(str(tmp_path / 'elsewhere')) == {}
