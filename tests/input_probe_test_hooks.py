"""Test-only hook: records every batch the model is fed in training and
validation, so a test can see the augmentations a real run applies.
Imported by the test configs only (custom_imports)."""
import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmpretrain.registry import HOOKS


@HOOKS.register_module()
class RecordModelInputsHook(Hook):
    """At the end of the run, save to ``out_file`` one record per batch:
    ``split`` ('train' or 'val'), ``epoch`` (1-based), ``paths``, ``raw``
    (the loader's uint8 images, BGR as packed) and ``fed`` (what the data
    preprocessor hands the network)."""

    def __init__(self, out_file: str) -> None:
        self.out_file = out_file
        self.records = []

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        self._record(runner, 'train', runner.epoch + 1, data_batch)

    def before_val_iter(self, runner, batch_idx, data_batch=None) -> None:
        self._record(runner, 'val', runner.epoch, data_batch)

    def _record(self, runner, split, epoch, data_batch) -> None:
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        with torch.no_grad():
            fed = model.data_preprocessor(data_batch, split == 'train')
        self.records.append(
            dict(split=split, epoch=epoch,
                 paths=[s.img_path for s in data_batch['data_samples']],
                 raw=data_batch['inputs'].clone(),
                 fed=fed['inputs'].float().contiguous().cpu()))

    def after_run(self, runner) -> None:
        torch.save(self.records, self.out_file)
