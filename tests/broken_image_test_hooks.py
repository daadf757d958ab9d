"""Test-only hook: deletes a photo after the dataset checked it, before the
data workers start. Imported by the test configs only (custom_imports)."""
import os

from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS


@HOOKS.register_module()
class DeletePhotoHook(Hook):
    """Delete ``path`` before the first training epoch."""

    def __init__(self, path: str) -> None:
        self.path = path

    def before_train_epoch(self, runner) -> None:
        if runner.epoch == 0:
            os.remove(self.path)
