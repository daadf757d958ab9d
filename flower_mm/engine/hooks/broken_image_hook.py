"""Say in the log what broken image files cost: re-drawn or left out."""
import logging
import os.path as osp
from typing import Optional

from mmengine.dist import all_gather_object
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmpretrain.registry import HOOKS


@HOOKS.register_module()
class BrokenImageHook(Hook):
    """Count the training samples re-drawn because their file broke during
    the run, and say when evaluation ran without broken files.

    ``FlowerDataset`` marks a sample that replaces one whose image could not
    be loaded (``redrawn_for`` in its metainfo); this hook sums them over
    the epoch (all ranks) and logs one line naming the files. Val and test
    sets built with ``on_broken='skip'`` get a line after their metrics
    saying how many images the metrics cover and how many were left out,
    so nothing leaves the accuracy's denominator unsaid.
    """

    # After LoggerHook (BELOW_NORMAL): the line follows the metrics.
    priority = 'LOW'

    def __init__(self) -> None:
        self._redrawn_for = []
        self.total_redrawn = 0

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch: Optional[dict] = None,
                         outputs: Optional[dict] = None) -> None:
        for sample in (data_batch or {}).get('data_samples') or []:
            self._redrawn_for += sample.metainfo.get('redrawn_for', [])

    def after_train_epoch(self, runner) -> None:
        redrawn = sum(all_gather_object(self._redrawn_for), [])
        self._redrawn_for = []
        self.total_redrawn += len(redrawn)
        runner.message_hub.update_info('broken_images_redrawn',
                                       self.total_redrawn)
        if redrawn:
            names = ', '.join(sorted(set(redrawn)))
            print_log(
                f'Epoch(train) [{runner.epoch + 1}]: re-drew {len(redrawn)} '
                'sample(s) whose image file broke during the run: '
                f'{names}. Delete or replace them before the next run.',
                logger='current',
                level=logging.WARNING)

    def after_val_epoch(self, runner, metrics=None) -> None:
        self._say_what_was_left_out(runner.val_dataloader.dataset, 'val')

    def after_test_epoch(self, runner, metrics=None) -> None:
        self._say_what_was_left_out(runner.test_dataloader.dataset, 'test')

    @staticmethod
    def _say_what_was_left_out(dataset, mode: str) -> None:
        skipped = getattr(dataset, 'skipped_broken', None)
        if not skipped:
            return
        names = ', '.join(osp.basename(p) for p in sorted(skipped))
        print_log(
            f'Epoch({mode}): the metrics cover {len(dataset)} of '
            f'{len(dataset) + len(skipped)} images; left out as they cannot '
            f'be decoded (on_broken=skip): {names}.',
            logger='current',
            level=logging.WARNING)
