"""Test-only hook for the sweep's tests: runs that must train at the same
time. Imported by the test configs only (custom_imports)."""
import json
import os
import time
from pathlib import Path

from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS


@HOOKS.register_module()
class BarrierHook(Hook):
    """Before training, write what this run sees of the machine
    (``CUDA_VISIBLE_DEVICES``, its CPU cores) to ``<folder>/<pid>.json``,
    then wait until ``parties`` runs have: runs started one after another
    never get past it, and fail after ``timeout`` seconds."""

    def __init__(self, folder: str, parties: int, timeout: float = 600):
        self.folder, self.parties, self.timeout = folder, parties, timeout

    def before_train(self, runner) -> None:
        folder = Path(self.folder)
        folder.mkdir(parents=True, exist_ok=True)
        record = dict(
            work_dir=runner.work_dir,
            cuda_visible_devices=os.environ.get('CUDA_VISIBLE_DEVICES'),
            cpus=sorted(os.sched_getaffinity(0)))
        (folder / f'{os.getpid()}.json').write_text(json.dumps(record))
        deadline = time.monotonic() + self.timeout
        while len(list(folder.glob('*.json'))) < self.parties:
            if time.monotonic() > deadline:
                raise RuntimeError(f'BarrierHook: {self.parties} runs never '
                                   'trained at the same time')
            time.sleep(0.2)
