"""Crash safety end to end: a SIGKILLed tools/train.py run resumed with
--resume ends like an uninterrupted one."""
import json
import os
import shutil
import signal
import time
from pathlib import Path

import pytest
import torch
from conftest import (REPO_ROOT, config_path, make_flower_dataset,
                      start_tool, tiny_cfg_options)

TRAIN = REPO_ROOT / 'tools' / 'train.py'
CONFIG = config_path('resnet50_flowers.py')


@pytest.fixture(scope='module')
def small_flowers(tmp_path_factory) -> Path:
    # 10 train images: 2 iterations of 5 per epoch, one per loader worker.
    return make_flower_dataset(
        tmp_path_factory.mktemp('crash_data') / 'flower_dataset',
        train_per_class=2,
        val_per_class=1)


def crash_cfg_options(data_root, checkpoint, *extra) -> list:
    """2 epochs at 32 px, deterministic, seed 0, persistent workers (the
    setting whose augmentation streams a stock resume cannot replay)."""
    return [
        *tiny_cfg_options(data_root, checkpoint, epochs=2, batch_size=5),
        'train_dataloader.dataset.pipeline.1.scale=32',
        'val_dataloader.dataset.pipeline.1.scale=40',
        'val_dataloader.dataset.pipeline.2.crop_size=32',
        'train_dataloader.num_workers=2',
        'train_dataloader.persistent_workers=True',
        'randomness.seed=0',
        'randomness.deterministic=True',
        *extra,
    ]


def start_train(config, work_dir: Path, options, *flags):
    work_dir.mkdir(parents=True, exist_ok=True)
    log_path = work_dir.parent / f'{work_dir.name}.out'
    # crash_test_hooks.py (the test-only ParkTrainingHook) lives in tests/.
    env = {'PYTHONPATH': os.pathsep.join(
        [str(REPO_ROOT / 'tests'), os.environ.get('PYTHONPATH', '')])}
    proc = start_tool([
        TRAIN, config, '--work-dir', work_dir, *flags, '--cfg-options',
        *options
    ], cwd=work_dir.parent, log_path=log_path, env=env)
    proc.log_path = log_path
    return proc


def finish(proc, timeout=400) -> None:
    returncode = proc.wait(timeout=timeout)
    if returncode != 0:
        raise AssertionError(f'{proc.args} exited {returncode}:\n' +
                             Path(proc.log_path).read_text()[-5000:])


def final_top1(work_dir: Path):
    """(epoch, accuracy/top1) of the last validation the work dir logged."""
    scalars = sorted(work_dir.glob('*/vis_data/scalars.json'))
    assert scalars, f'no scalars.json under {work_dir}'
    records = [
        json.loads(line) for line in scalars[-1].read_text().splitlines()
    ]
    last = [r for r in records if 'accuracy/top1' in r][-1]
    return last['step'], last['accuracy/top1']


def load_state(path: Path) -> dict:
    return torch.load(path, map_location='cpu', weights_only=True)


def differing_tensors(a: dict, b: dict) -> list:
    assert a.keys() == b.keys()
    return [k for k in a if not torch.equal(a[k], b[k])]


def test_sigkill_in_epoch_2_then_resume_equals_uninterrupted_run(
        tmp_path, small_flowers, pretrained_ckpt):
    options = crash_cfg_options(small_flowers, pretrained_ckpt)
    no_fix = [*options, 'default_hooks.resumable_randomness.enable=False']
    marker = tmp_path / 'parked_in_epoch_2'
    park_config = tmp_path / 'park_in_epoch_2.py'
    park_config.write_text(
        f'_base_ = [{CONFIG!r}]\n'
        "custom_imports = dict(imports=['flower_mm.registration', "
        "'crash_test_hooks'], "
        'allow_failed_imports=False)\n'
        'default_hooks = dict(park=dict(type="ParkTrainingHook", epoch=2, '
        f'iter=1, marker={str(marker)!r}))\n')

    full = start_train(CONFIG, tmp_path / 'full', options)
    crashed = start_train(str(park_config), tmp_path / 'crashed', options)
    full_no_fix = start_train(CONFIG, tmp_path / 'full_no_fix', no_fix)

    # SIGKILL the run (and its loader workers) one iteration into epoch 2.
    deadline = time.time() + 400
    while not marker.exists():
        assert crashed.poll() is None, Path(crashed.log_path).read_text()
        assert time.time() < deadline, 'training never reached epoch 2'
        time.sleep(0.2)
    os.killpg(crashed.pid, signal.SIGKILL)
    assert crashed.wait(timeout=60) == -signal.SIGKILL
    crash_dir = tmp_path / 'crashed'
    assert (crash_dir / 'epoch_1.pth').is_file()
    assert not (crash_dir / 'epoch_2.pth').exists()
    assert (crash_dir / 'last_checkpoint').read_text().endswith('epoch_1.pth')

    resumed = start_train(CONFIG, crash_dir, options, '--resume')
    finish(full)
    # Without the fix: resume the uninterrupted run's epoch-1 checkpoint.
    finish(full_no_fix)
    resumed_no_fix_dir = tmp_path / 'resumed_no_fix'
    resumed_no_fix_dir.mkdir()
    shutil.copy(tmp_path / 'full_no_fix' / 'epoch_1.pth', resumed_no_fix_dir)
    (resumed_no_fix_dir / 'last_checkpoint').write_text(
        str(resumed_no_fix_dir / 'epoch_1.pth'))
    resumed_no_fix = start_train(CONFIG, resumed_no_fix_dir, no_fix,
                                 '--resume')
    finish(resumed)
    finish(resumed_no_fix)

    resume_log = Path(resumed.log_path).read_text()
    assert 'resumed epoch: 1' in resume_log
    full_ckpt = load_state(tmp_path / 'full' / 'epoch_2.pth')
    resumed_ckpt = load_state(crash_dir / 'epoch_2.pth')
    assert differing_tensors(full_ckpt['state_dict'],
                             resumed_ckpt['state_dict']) == []
    full_momentum = full_ckpt['optimizer']['state']
    resumed_momentum = resumed_ckpt['optimizer']['state']
    assert full_momentum.keys() == resumed_momentum.keys()
    assert all(
        torch.equal(full_momentum[k]['momentum_buffer'], resumed_momentum[k]
                    ['momentum_buffer']) for k in full_momentum)
    assert final_top1(crash_dir) == final_top1(tmp_path / 'full')
    assert final_top1(crash_dir)[0] == 2

    # Stock behaviour: the persistent workers' augmentation streams restart
    # on resume, so epoch 2 trains on other crops than the uninterrupted run.
    no_fix_diff = differing_tensors(
        load_state(tmp_path / 'full_no_fix' / 'epoch_2.pth')['state_dict'],
        load_state(resumed_no_fix_dir / 'epoch_2.pth')['state_dict'])
    assert len(no_fix_diff) > 0
