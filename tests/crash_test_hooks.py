"""Test-only hook: parks training at a given iteration so a test can SIGKILL
it at a known point. Imported by the test configs only (custom_imports)."""
import time
from pathlib import Path

from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS


@HOOKS.register_module()
class ParkTrainingHook(Hook):
    """After iteration ``iter`` (1-based) of epoch ``epoch`` (1-based), write
    ``marker`` and sleep until the process is killed. With ``seed``, only
    the run of that ``randomness.seed`` parks, and only while ``marker``
    does not exist yet (its resumed run goes on)."""

    def __init__(self, epoch: int, iter: int, marker: str,
                 seed: int = None) -> None:
        self.epoch, self.iter, self.marker = epoch, iter, marker
        self.seed = seed

    def after_train_iter(self,
                         runner,
                         batch_idx,
                         data_batch=None,
                         outputs=None) -> None:
        if self.seed is not None and (runner.seed != self.seed
                                      or Path(self.marker).exists()):
            return
        if runner.epoch + 1 == self.epoch and batch_idx + 1 == self.iter:
            Path(self.marker).write_text(str(runner.iter))
            while True:
                time.sleep(1)
