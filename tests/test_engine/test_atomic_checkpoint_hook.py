"""AtomicCheckpointHook: checkpoints written atomically, auto-resume falls
back to the newest complete one (MMEngine Runner, toy model)."""
import errno
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import torch
from mmengine.evaluator import BaseMetric
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch.utils.data import Dataset

from flower_mm.engine.hooks import (check_checkpoint_complete,
                                    find_last_complete_checkpoint)


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


def load_state(path: Path) -> dict:
    return torch.load(path, map_location='cpu', weights_only=True)


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
