"""Helpers of the sweep's tests: tiny configs, and what the runs logged,
read straight from their files (not through flower_mm)."""
import csv
import glob
import json
import os
import statistics

import pytest
from conftest import REPO_ROOT, config_path, tiny_cfg_options

SWEEP = str(REPO_ROOT / 'tools' / 'sweep.py')
# The test-only hooks (crash_test_hooks.py, sweep_test_hooks.py) live in
# tests/: the runs import them through PYTHONPATH.
TEST_HOOKS_ENV = {
    'PYTHONPATH': os.pathsep.join(
        [str(REPO_ROOT / 'tests'), os.environ.get('PYTHONPATH', '')])
}


def sweep_options(data_root, checkpoint) -> list:
    """--cfg-options for every run: tiny data, images and batch (10), the
    local checkpoint; the configs keep their epochs."""
    return [
        o for o in tiny_cfg_options(data_root, checkpoint, batch_size=10)
        if not o.startswith('train_cfg.max_epochs')
    ]


def write_config(path, parent: str, epochs: int, hooks: str = '') -> str:
    """A config of a few lines on configs/<parent>, with ``hooks`` (the
    repr of a default_hooks dict) from the test-only hook modules."""
    text = (f'_base_ = {config_path(parent)!r}\n'
            f'train_cfg = dict(max_epochs={epochs})\n')
    if hooks:
        text += ("custom_imports = dict(imports=['flower_mm.registration', "
                 "'crash_test_hooks', 'sweep_test_hooks'], "
                 'allow_failed_imports=False)\n'
                 f'default_hooks = {hooks}\n')
    path.write_text(text)
    return str(path)


def logged_val_top1(work_dir):
    """epoch -> val top-1, read straight from the runs' scalars.json."""
    top1 = {}
    for path in sorted(glob.glob(f'{work_dir}/*/vis_data/scalars.json')):
        for line in open(path):
            record = json.loads(line)
            if 'accuracy/top1' in record:
                top1[record['step']] = record['accuracy/top1']
    return top1


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def assert_cell_matches_logs(work_root, row, seeds):
    """A results.csv row: the mean and sample std over the seeds' best
    val top-1 as their logs have them."""
    bests = [max(logged_val_top1(work_root / row['config'] / f'seed{s}')
                 .values()) for s in seeds]
    assert row['n'] == str(len(seeds))
    assert row['seeds'] == ';'.join(map(str, seeds))
    assert [float(v) for v in row['best_top1_per_seed'].split(';')] == bests
    assert float(row['best_top1']) == pytest.approx(statistics.mean(bests))
    assert float(row['best_top1_std']) == pytest.approx(
        statistics.stdev(bests))
    return bests
