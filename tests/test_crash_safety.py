"""Crash safety: a SIGKILLed run resumed with --resume ends like an
uninterrupted one; checkpoints are written atomically and --resume skips
incomplete ones."""
import errno
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import (REPO_ROOT, config_path, make_flower_dataset,
                      tiny_cfg_options)
from mmengine.config import Config
from mmengine.evaluator import BaseMetric
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch.utils.data import DataLoader, Dataset

import flower_mm.fileio.atomic_local_backend as atomic_local_backend
from flower_mm.engine.hooks import (SampleSeededPipeline,
                                    check_checkpoint_complete,
                                    find_last_complete_checkpoint,
                                    seed_everything_for_epoch)
from flower_mm.engine.hooks.resumable_randomness_hook import \
    iter_pipeline_datasets
from flower_mm.fileio import atomic_write_bytes

TRAIN = REPO_ROOT / 'tools' / 'train.py'
CONFIG = config_path('resnet50_flowers.py')


# --------------------------------------------------------------------------
# SIGKILL in epoch 2, then --resume (tools/train.py, ResNet-50, tiny data)
# --------------------------------------------------------------------------
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


def start_train(config, work_dir: Path, options, *flags) -> subprocess.Popen:
    work_dir.mkdir(parents=True, exist_ok=True)
    log = open(work_dir.parent / f'{work_dir.name}.out', 'a')
    env = dict(os.environ)
    # crash_test_hooks.py (the test-only ParkTrainingHook) lives in tests/.
    env['PYTHONPATH'] = os.pathsep.join(
        [str(Path(__file__).parent),
         env.get('PYTHONPATH', '')])
    proc = subprocess.Popen(
        [
            sys.executable,
            str(TRAIN), config, '--work-dir',
            str(work_dir), *flags, '--cfg-options', *options
        ],
        cwd=work_dir.parent,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True)  # its own group: kill it with its workers
    proc.log_path = log.name
    log.close()
    return proc


def finish(proc: subprocess.Popen, timeout=400) -> None:
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
        "custom_imports = dict(imports=['flower_mm', 'crash_test_hooks'], "
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


# --------------------------------------------------------------------------
# Per-epoch, per-sample seeding (unit level)
# --------------------------------------------------------------------------
def draw_randoms(results: dict) -> tuple:
    """A stand-in pipeline drawing from every RNG transforms use."""
    return (results['sample_idx'], random.random(), float(np.random.rand()),
            float(torch.rand(1)))


class IndexDataset(Dataset):

    def __init__(self, length: int, pipeline) -> None:
        self.length, self.pipeline = length, pipeline

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, idx):
        return self.pipeline(dict(sample_idx=idx))


def test_sample_seeded_pipeline_depends_on_seed_epoch_and_index_only():
    pipeline = SampleSeededPipeline(draw_randoms, seed=0)
    pipeline.set_epoch(1)
    first = pipeline(dict(sample_idx=3))
    np.random.seed(123), random.seed(123), torch.manual_seed(123)
    states = (random.getstate(), np.random.get_state()[1].copy(),
              torch.get_rng_state())
    assert pipeline(dict(sample_idx=3)) == first
    # Main process: the caller's RNG states are put back.
    assert random.getstate() == states[0]
    assert np.array_equal(np.random.get_state()[1], states[1])
    assert torch.equal(torch.get_rng_state(), states[2])
    assert pipeline(dict(sample_idx=4))[1:] != first[1:]
    pipeline.set_epoch(2)
    assert pipeline(dict(sample_idx=3))[1:] != first[1:]
    other_seed = SampleSeededPipeline(draw_randoms, seed=1)
    other_seed.set_epoch(1)
    assert other_seed(dict(sample_idx=3))[1:] != first[1:]
    with pytest.raises(KeyError, match='sample_idx'):
        pipeline(dict(img_path='a.jpg'))


def epoch_samples(loader, pipeline, epoch) -> dict:
    pipeline.set_epoch(epoch)
    return {int(s[0]): tuple(map(float, s[1:])) for s in _rows(loader)}


def _rows(loader):
    for batch in loader:
        yield from zip(*batch)


def test_persistent_workers_see_the_epoch_and_resume_replays_it():

    def make_loader():
        pipeline = SampleSeededPipeline(draw_randoms, seed=0)
        loader = DataLoader(
            IndexDataset(8, pipeline),
            batch_size=2,
            shuffle=False,
            num_workers=2,
            persistent_workers=True)
        return loader, pipeline

    loader, pipeline = make_loader()
    epochs = [epoch_samples(loader, pipeline, e) for e in range(3)]
    assert epochs[0] != epochs[1] != epochs[2]  # fresh crops every epoch
    # A "resumed" run: new workers, starting at epoch 1.
    resumed_loader, resumed_pipeline = make_loader()
    assert epoch_samples(resumed_loader, resumed_pipeline, 1) == epochs[1]
    assert epoch_samples(resumed_loader, resumed_pipeline, 2) == epochs[2]


def test_pipelines_are_found_inside_dataset_wrappers():
    first, second = SimpleNamespace(pipeline=abs), SimpleNamespace(
        pipeline=abs)
    wrapped = SimpleNamespace(datasets=[
        first, SimpleNamespace(dataset=second, times=2)
    ])  # like ConcatDataset([first, RepeatDataset(second)])
    assert list(iter_pipeline_datasets(wrapped)) == [first, second]
    with pytest.raises(TypeError, match='cannot find the pipeline of'):
        list(iter_pipeline_datasets(SimpleNamespace(images=[])))


def test_main_process_rngs_are_reseeded_per_epoch():

    def draws():
        return (random.random(), float(np.random.rand()), float(torch.rand(1)))

    seed_everything_for_epoch(0, 1)
    epoch_1 = draws()
    draws(), draws()  # whatever ran since (validation, another epoch)
    seed_everything_for_epoch(0, 1)
    assert draws() == epoch_1
    seed_everything_for_epoch(0, 2)
    assert draws() != epoch_1


# --------------------------------------------------------------------------
# Atomic checkpoints and auto-resume fallback (MMEngine Runner, toy model)
# --------------------------------------------------------------------------
class ToyModel(BaseModel):

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(2, 1)

    def forward(self, inputs, labels, mode='tensor'):
        outputs = self.linear(inputs)
        if mode == 'loss':
            return dict(loss=((outputs - labels)**2).mean())
        return outputs


class ToyDataset(Dataset):
    metainfo = dict(classes=('toy', ))
    inputs = torch.arange(16, dtype=torch.float32).reshape(8, 2) / 16

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, idx):
        return dict(inputs=self.inputs[idx], labels=self.inputs[idx, :1])


class RisingScore(BaseMetric):
    """A score that improves every validation, so every epoch saves a new
    best checkpoint and re-saves epoch_N.pth (MMEngine's save_best path)."""

    calls = 0  # shared by all instances, so a resumed run improves too

    def process(self, data_batch, data_samples) -> None:
        self.results.append(1)

    def compute_metrics(self, results) -> dict:
        RisingScore.calls += 1
        return dict(score=float(RisingScore.calls))


def toy_runner(work_dir: Path,
               max_epochs: int,
               resume=False,
               max_keep_ckpts=-1) -> Runner:
    loader = dict(
        dataset=ToyDataset(),
        sampler=dict(type='DefaultSampler', shuffle=False),
        batch_size=4,
        num_workers=0,
        collate_fn=dict(type='default_collate'))
    return Runner(
        model=ToyModel(),
        work_dir=str(work_dir),
        experiment_name=f'toy_{uuid.uuid4().hex}',
        train_dataloader=loader,
        val_dataloader=loader,
        val_evaluator=[RisingScore()],
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs, val_interval=1),
        val_cfg=dict(),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        default_hooks=dict(
            checkpoint=dict(
                type='AtomicCheckpointHook',
                interval=1,
                max_keep_ckpts=max_keep_ckpts,
                save_best='score',
                rule='greater')),
        resume=resume,
        default_scope='mmpretrain')


def run_log(work_dir: Path) -> str:
    return sorted(work_dir.glob('*/*.log'))[-1].read_text()


@pytest.fixture
def disk_full_on(monkeypatch):
    """Make the n-th write of a file end with ENOSPC after half its bytes,
    as a filling disk does."""
    real_open = open

    def arm(name: str, nth: int = 1) -> None:
        seen = []

        class HalfWriter:

            def __init__(self, file):
                self.file = file

            def write(self, data):
                self.file.write(data[:len(data) // 2])
                self.file.flush()
                raise OSError(errno.ENOSPC, 'No space left on device')

            def __getattr__(self, attr):
                return getattr(self.file, attr)

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.file.close()

        def failing_open(path, mode='r', *args, **kwargs):
            file = real_open(path, mode, *args, **kwargs)
            if Path(path).name.startswith(name + '.tmp-'):
                seen.append(path)
                if len(seen) == nth:
                    return HalfWriter(file)
            return file

        monkeypatch.setattr(
            atomic_local_backend, 'open', failing_open, raising=False)

    return arm


def test_atomic_write_keeps_old_file_when_the_disk_fills(
        tmp_path, disk_full_on):
    target = tmp_path / 'data.bin'
    atomic_write_bytes(b'old contents', target)
    disk_full_on('data.bin')
    with pytest.raises(OSError) as err:
        atomic_write_bytes(b'new contents' * 1000, target)
    assert err.value.errno == errno.ENOSPC
    assert target.read_bytes() == b'old contents'
    assert [p.name for p in tmp_path.iterdir()] == ['data.bin']


def test_disk_full_while_saving_a_new_checkpoint(tmp_path, disk_full_on):
    work_dir = tmp_path / 'work'
    # max_keep_ckpts=1: MMEngine deletes epoch_2.pth *before* saving
    # epoch_3.pth and would be left with no checkpoint at all.
    disk_full_on('epoch_3.pth')
    with pytest.raises(OSError, match='epoch_3.pth failed') as err:
        toy_runner(work_dir, max_epochs=3, max_keep_ckpts=1).train()
    assert err.value.errno == errno.ENOSPC
    assert 'epoch_2.pth is intact' in str(err.value)

    assert sorted(p.name for p in work_dir.glob('*.pth')) == [
        'best_score_epoch_2.pth', 'epoch_2.pth'
    ]
    assert not list(work_dir.glob('*.tmp-*'))
    assert (work_dir / 'last_checkpoint').read_text() == str(work_dir /
                                                             'epoch_2.pth')
    assert check_checkpoint_complete(str(work_dir / 'epoch_2.pth')) == (True,
                                                                        '')
    assert load_state(work_dir / 'epoch_2.pth')['meta']['epoch'] == 2

    toy_runner(work_dir, max_epochs=3, resume=True).train()
    log = run_log(work_dir)
    assert (f'Auto resumed from the latest checkpoint {work_dir}/epoch_2.pth'
            in log)
    assert 'resumed epoch: 2' in log
    assert load_state(work_dir / 'epoch_3.pth')['meta']['epoch'] == 3
    assert (work_dir / 'best_score_epoch_3.pth').is_file()
    assert not (work_dir / 'best_score_epoch_2.pth').exists()


def test_disk_full_while_overwriting_a_checkpoint(tmp_path, disk_full_on):
    work_dir = tmp_path / 'work'
    # After a new best score MMEngine saves epoch_N.pth a second time.
    disk_full_on('epoch_2.pth', nth=2)
    with pytest.raises(OSError, match='epoch_2.pth failed'):
        toy_runner(work_dir, max_epochs=2).train()
    # The first, complete epoch_2.pth is still there.
    assert load_state(work_dir / 'epoch_2.pth')['meta']['epoch'] == 2
    assert check_checkpoint_complete(str(work_dir / 'epoch_2.pth'))[0]
    assert not list(work_dir.glob('*.tmp-*'))


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


@pytest.mark.parametrize('damage, expected_problem, resumed_epoch', [
    ('truncate', 'epoch_2.pth, but it is truncated', 1),
    ('delete', 'epoch_2.pth, but the file does not exist', 1),
    ('no_record', 'there is no', 2),
    ('empty_record', 'is empty or unreadable', 2),
])
def test_auto_resume_falls_back_to_newest_complete_checkpoint(
        tmp_path, damage, expected_problem, resumed_epoch):
    work_dir = tmp_path / 'work'
    toy_runner(work_dir, max_epochs=2).train()
    assert load_state(work_dir / 'epoch_1.pth')['meta']['epoch'] == 1
    if damage == 'truncate':  # what a crash mid-save leaves without us
        truncate(work_dir / 'epoch_2.pth')
    elif damage == 'delete':
        (work_dir / 'epoch_2.pth').unlink()
    elif damage == 'no_record':
        (work_dir / 'last_checkpoint').unlink()
    else:
        (work_dir / 'last_checkpoint').write_text('')
    # A partial file a killed save left behind (pid of an ended process).
    ended = subprocess.Popen([sys.executable, '-c', 'pass'])
    ended.wait()
    stale = work_dir / f'epoch_9.pth.tmp-{ended.pid}'
    stale.write_bytes(b'partial')

    toy_runner(work_dir, max_epochs=3, resume=True).train()
    log = run_log(work_dir)
    assert expected_problem in log
    assert ('Resuming from the newest complete checkpoint instead: '
            f'{work_dir}/epoch_{resumed_epoch}.pth') in log
    assert f'resumed epoch: {resumed_epoch}' in log
    assert f'Removed {stale.name}' in log and not stale.exists()
    assert load_state(work_dir / 'epoch_3.pth')['meta']['epoch'] == 3


def test_auto_resume_without_any_complete_checkpoint_says_what_to_do(tmp_path):
    work_dir = tmp_path / 'work'
    toy_runner(work_dir, max_epochs=1).train()
    truncate(work_dir / 'epoch_1.pth')
    with pytest.raises(FileNotFoundError) as err:
        toy_runner(work_dir, max_epochs=2, resume=True).train()
    message = str(err.value)
    assert 'epoch_1.pth, but it is truncated' in message
    assert '--resume /path/to/checkpoint.pth' in message
    assert str(work_dir / 'last_checkpoint') in message


def test_check_checkpoint_complete_and_find_last_complete(tmp_path):
    for epoch in (1, 2, 10):
        torch.save(
            {
                'meta': dict(epoch=epoch),
                'state_dict': dict(weight=torch.ones(4096))
            }, tmp_path / f'epoch_{epoch}.pth')
    assert find_last_complete_checkpoint(str(tmp_path)) == str(tmp_path /
                                                               'epoch_10.pth')
    truncate(tmp_path / 'epoch_10.pth')
    assert find_last_complete_checkpoint(str(tmp_path)) == str(tmp_path /
                                                               'epoch_2.pth')
    damaged = bytearray((tmp_path / 'epoch_2.pth').read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF  # inside the 16 KiB of weights
    (tmp_path / 'epoch_2.pth').write_bytes(bytes(damaged))
    complete, why_not = check_checkpoint_complete(
        str(tmp_path / 'epoch_2.pth'))
    assert not complete and 'CRC' in why_not
    assert find_last_complete_checkpoint(str(tmp_path)) == str(tmp_path /
                                                               'epoch_1.pth')
    (tmp_path / 'empty.pth').write_bytes(b'')
    assert not check_checkpoint_complete(str(tmp_path / 'empty.pth'))[0]


def test_flower_configs_use_the_crash_safe_hooks():
    cfg = Config.fromfile(CONFIG)
    assert cfg.default_hooks.checkpoint.type == 'AtomicCheckpointHook'
    assert cfg.default_hooks.checkpoint.save_best == 'accuracy/top1'
    assert (cfg.default_hooks.resumable_randomness.type ==
            'ResumableRandomnessHook')
