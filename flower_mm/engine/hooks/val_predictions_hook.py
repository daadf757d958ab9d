"""Each validation's per-photo predictions, for paired comparisons of runs."""
import json
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence

from mmengine.dist import all_gather_object, is_main_process
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS

from flower_mm.fileio import atomic_write_bytes

VAL_PREDICTIONS_DIR = 'val_predictions'


@HOOKS.register_module()
class ValPredictionsHook(Hook):
    """After each validation, write every val photo's true and predicted
    class to ``<work_dir>/val_predictions/epoch_<N>.json``.

    The accuracy logged in ``scalars.json`` says how many photos a run got
    right, not which: comparing two runs photo by photo (the sweep's paired
    bootstrap, ``flower_mm.experiments.statistics``) needs these. A file
    holds ``epoch``, ``img_path``, ``gt_label`` and ``pred_label`` (lists in
    dataset order), a few bytes per photo; a resumed run that validates an
    epoch again rewrites its file.

    Args:
        out_dir (str): Folder under the work dir.
    """

    priority = 'LOW'

    def __init__(self, out_dir: str = VAL_PREDICTIONS_DIR):
        self.out_dir = out_dir
        self._records: Dict[int, tuple] = {}

    def before_val_epoch(self, runner) -> None:
        self._records = {}

    def after_val_iter(self,
                       runner,
                       batch_idx: int,
                       data_batch=None,
                       outputs: Optional[Sequence] = None) -> None:
        for sample in outputs or ():
            if 'gt_label' not in sample or 'pred_label' not in sample:
                continue
            # Keyed by sample: a distributed sampler pads with repeats.
            self._records[int(sample.sample_idx)] = (
                sample.get('img_path', ''), int(sample.gt_label[0]),
                int(sample.pred_label[0]))

    def after_val_epoch(self, runner, metrics: Optional[dict] = None) -> None:
        records: Dict[int, tuple] = {}
        for part in all_gather_object(self._records):  # every rank's share
            records.update(part)
        if not is_main_process() or not records:
            return
        ordered: List[tuple] = [records[i] for i in sorted(records)]
        content = dict(
            epoch=runner.epoch,
            img_path=[r[0] for r in ordered],
            gt_label=[r[1] for r in ordered],
            pred_label=[r[2] for r in ordered])
        path = osp.join(runner.work_dir, self.out_dir,
                        f'epoch_{runner.epoch}.json')
        atomic_write_bytes(json.dumps(content).encode(), path)


def read_val_predictions(work_dir: str,
                         out_dir: str = VAL_PREDICTIONS_DIR) -> Dict[int, dict]:
    """epoch -> what :class:`ValPredictionsHook` wrote for it; empty when
    the run wrote nothing (trained before the hook, or without it)."""
    folder = osp.join(work_dir, out_dir)
    predictions = {}
    if not osp.isdir(folder):
        return predictions
    for name in os.listdir(folder):
        stem, ext = osp.splitext(name)
        if ext != '.json' or not stem.startswith('epoch_') or \
                not stem[6:].isdigit():
            continue
        with open(osp.join(folder, name)) as f:
            predictions[int(stem[6:])] = json.load(f)
    return predictions
