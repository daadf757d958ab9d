"""tools/sweep.py --gpus K: K runs at once, each with its own GPU, on a
machine whose nvidia-smi is a fake listing two GPUs (the runs train on the
CPU); asking for more GPUs than listed stops before anything starts."""
import json
import os

import pytest
from conftest import assert_user_error, run_tool
from mmengine.config import Config
from sweep_checks import (SWEEP, TEST_HOOKS_ENV, assert_cell_matches_logs,
                          read_csv, sweep_options, write_config)

from flower_mm.experiments import SweepError
from flower_mm.experiments.local_launcher import list_gpus, pick_gpus

FAKE_GPUS = ['GPU-0a0a0a0a-fake', 'GPU-1b1b1b1b-fake']


@pytest.fixture
def two_fake_gpus(tmp_path, monkeypatch):
    """An nvidia-smi on PATH that lists two GPUs; the environment for the
    tools (PATH, and the test hooks on PYTHONPATH)."""
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    smi = bin_dir / 'nvidia-smi'
    smi.write_text('#!/bin/sh\n'
                   f'echo "0, {FAKE_GPUS[0]}, Fake GPU A"\n'
                   f'echo "1, {FAKE_GPUS[1]}, Fake GPU B"\n')
    smi.chmod(0o755)
    monkeypatch.setenv('PATH', f'{bin_dir}{os.pathsep}{os.environ["PATH"]}')
    monkeypatch.delenv('CUDA_VISIBLE_DEVICES', raising=False)
    return dict(TEST_HOOKS_ENV, PATH=os.environ['PATH'])


def test_gpus_k_trains_k_seeds_at_once_one_gpu_each(
        tmp_path, flower_data_root, resnet18_ckpt, two_fake_gpus):
    barrier = tmp_path / 'barrier'
    # Each run waits before training until both have started: one after
    # another, the first would wait in vain and fail.
    config = write_config(
        tmp_path / 'tiny_r18.py', 'resnet18_flowers.py', 1,
        hooks=f'dict(barrier=dict(type="BarrierHook", folder={str(barrier)!r}'
        ', parties=2, timeout=120))')
    work_root = tmp_path / 'sweep'
    cmd = [
        SWEEP, config, '--seeds', '2', '--gpus', '2', '--work-root',
        work_root, '--cfg-options',
        *sweep_options(flower_data_root, resnet18_ckpt)
    ]
    out = run_tool(cmd, cwd=tmp_path, env=two_fake_gpus).stdout
    assert '2 at once on this machine, one GPU each (GPU 0, GPU 1)' in out
    assert 'tiny_r18/seed0: training from scratch into ' in out
    assert 'on GPU 0 (Fake GPU A)' in out and 'on GPU 1 (Fake GPU B)' in out
    # Runs at once write to their train.log only, not to the terminal.
    assert 'Epoch(train)' not in out

    records = [json.loads(p.read_text()) for p in barrier.glob('*.json')]
    by_seed = {r['work_dir'][-5:]: r for r in records}
    assert sorted(by_seed) == ['seed0', 'seed1']
    assert sorted(r['cuda_visible_devices'] for r in records) == FAKE_GPUS
    # Each got its share of the cores (2 here: one each).
    cpus = [set(r['cpus']) for r in records]
    assert not cpus[0] & cpus[1]
    for seed in (0, 1):
        run_dir = work_root / 'tiny_r18' / f'seed{seed}'
        assert 'Epoch(train) [1]' in (run_dir / 'train.log').read_text()
        state = json.loads((run_dir / 'sweep_run.json').read_text())
        assert state['status'] == 'done'
        assert state['device'].startswith('1x Fake GPU ')
        # The config each run trained with (tools/train.py dumps it).
        dumped = Config.fromfile(run_dir / 'tiny_r18.py',
                                 import_custom_modules=False)
        assert dumped.randomness.seed == seed

    # The table: mean ± sample std over the two seeds' logs.
    row, = read_csv(work_root / 'results.csv')
    bests = assert_cell_matches_logs(work_root, row, seeds=[0, 1])
    mean, std = sum(bests) / 2, abs(bests[0] - bests[1]) / 2**0.5
    assert (f'| `tiny_r18` | - | 2 | {mean:.2f} ± {std:.2f} |'
            in (work_root / 'results.md').read_text())


def test_more_gpus_than_the_machine_has_stop_before_anything(
        tmp_path, two_fake_gpus, monkeypatch):
    work_root = tmp_path / 'sweep'
    proc = run_tool([
        SWEEP, 'table1', '--gpus', '3', '--work-root', work_root
    ], cwd=tmp_path, env=two_fake_gpus, check=False)
    assert_user_error(
        proc, '--gpus 3 asks for 3 runs at once, one GPU each, but this '
        'machine has 2 GPUs (0, 1); ask for at most --gpus 2.')
    assert not work_root.exists()

    assert [g.uuid for g in pick_gpus(2)] == FAKE_GPUS
    # CUDA_VISIBLE_DEVICES narrows what the sweep may hand out.
    monkeypatch.setenv('CUDA_VISIBLE_DEVICES', FAKE_GPUS[1])
    assert [g.index for g in list_gpus()] == ['1']
    with pytest.raises(SweepError, match=(
            'but this machine has 1 GPU that CUDA_VISIBLE_DEVICES='
            f'{FAKE_GPUS[1]} leaves visible \\(1\\)')):
        pick_gpus(2)
    with pytest.raises(SweepError, match='at least 1'):
        pick_gpus(0)
    # No nvidia-smi at all.
    monkeypatch.setenv('PATH', os.environ['PATH'].split(os.pathsep, 1)[1])
    with pytest.raises(SweepError, match='nvidia-smi is not installed here, '
                       'so no GPU is visible; leave --gpus out'):
        pick_gpus(1)
