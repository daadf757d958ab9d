"""Test-only hook: parks training at a given iteration so a test can SIGKILL
it at a known point. Imported by the test configs only (custom_imports)."""
import time
from pathlib import Path

from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS


@HOOKS.register_module()
class ParkTrainingHook(Hook):
    """After iteration ``iter`` (1-based) of epoch ``epoch`` (1-based), write
    ``marker`` and sleep until the process is killed."""

    def __init__(self, epoch: int, iter: int, marker: str) -> None:
        self.epoch, self.iter, self.marker = epoch, iter, marker

    def after_train_iter(self,
                         runner,
                         batch_idx,
                         data_batch=None,
                         outputs=None) -> None:
        if runner.epoch + 1 == self.epoch and batch_idx + 1 == self.iter:
            Path(self.marker).write_text(str(runner.iter))
            while True:
                time.sleep(1)
