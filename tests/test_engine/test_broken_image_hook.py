"""A photo that breaks during a run: re-drawn in training, counted in the
epoch's log; evaluation says what it left out."""
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import make_flower_dataset
from mmengine.logging import MessageHub
from mmengine.dataset import default_collate

import flower_mm.engine.hooks.broken_image_hook as hook_module
from flower_mm.datasets import FlowerDataset
from flower_mm.engine.hooks import BrokenImageHook


def pipeline(ignore_empty):
    return [
        dict(type='RobustLoadImageFromFile', ignore_empty=ignore_empty),
        dict(type='PackInputs')
    ]


@pytest.fixture
def logged(monkeypatch):
    lines = []
    monkeypatch.setattr(hook_module, 'print_log',
                        lambda msg, **kwargs: lines.append(msg))
    return lines


def test_file_deleted_mid_run_is_redrawn_and_counted(tmp_path, logged):
    root = make_flower_dataset(tmp_path / 'flower_dataset', 2, 1)
    dataset = FlowerDataset(
        data_root=str(root), data_prefix='train',
        pipeline=pipeline(ignore_empty=True))
    gone = dataset.get_data_info(3)['img_path']
    (root / 'train' / gone.split('/')[-2] / gone.split('/')[-1]).unlink()

    np.random.seed(1)  # BaseDataset._rand_another draws from numpy
    sample = dataset[3]  # BaseDataset draws another index
    assert sample['data_samples'].img_path != gone
    assert sample['data_samples'].redrawn_for == [gone]
    assert 'redrawn_for' not in dataset[4]['data_samples']

    hook = BrokenImageHook()
    runner = SimpleNamespace(
        epoch=0, message_hub=MessageHub.get_instance('broken-image-test'))
    batch = default_collate([sample, dataset[0]])
    hook.after_train_iter(runner, 0, batch)
    hook.after_train_epoch(runner)
    assert logged == [
        f'Epoch(train) [1]: re-drew 1 sample(s) whose image file broke '
        f'during the run: {gone}. Delete or replace them before the next '
        'run.'
    ]
    assert runner.message_hub.get_info('broken_images_redrawn') == 1
    hook.after_train_epoch(runner)  # a clean epoch says nothing
    assert len(logged) == 1


def test_evaluation_raises_on_a_file_deleted_mid_run(tmp_path):
    """Re-drawing would change what the accuracy is computed over."""
    root = make_flower_dataset(tmp_path / 'flower_dataset', 1, 1)
    dataset = FlowerDataset(
        data_root=str(root), data_prefix='val', test_mode=True,
        pipeline=pipeline(ignore_empty=False))
    gone = dataset.get_data_info(0)['img_path']
    (root / 'val' / 'daisy' / gone.split('/')[-1]).unlink()
    with pytest.raises(FileNotFoundError, match=gone.split('/')[-1]):
        dataset[0]


def test_skipped_val_files_are_named_after_the_metrics(tmp_path, logged):
    root = make_flower_dataset(tmp_path / 'flower_dataset', 1, 2)
    (root / 'val' / 'rose' / 'empty.jpg').write_bytes(b'')
    dataset = FlowerDataset(
        data_root=str(root), data_prefix='val', on_broken='skip',
        test_mode=True)
    runner = SimpleNamespace(test_dataloader=SimpleNamespace(dataset=dataset))
    BrokenImageHook().after_test_epoch(runner, {'accuracy/top1': 100.0})
    assert logged == [
        'Epoch(test): the metrics cover 10 of 11 images; left out as they '
        'cannot be decoded (on_broken=skip): empty.jpg.'
    ]
