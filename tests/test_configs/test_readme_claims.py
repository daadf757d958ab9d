"""What README.md and docs/ promise, pinned as literals: each test reads the
sentence from the docs and checks the config or the code against the same
figures written here, not read back from the code under test."""
import os
import re

import pytest
import torch
from conftest import REPO_ROOT, config_path
from mmengine.config import Config

from flower_mm.experiments import EXPERIMENTS
from flower_mm.utils.machine import resolve_num_workers

README = (REPO_ROOT / 'README.md').read_text()


def one_line(text: str) -> str:
    return re.sub(r'\s+', ' ', text)


@pytest.fixture(scope='module')
def cfg():
    return Config.fromfile(config_path('resnet50_flowers.py'))


def test_schedule_is_the_readme_step_schedule(cfg):
    assert ('with a step schedule (x0.1 at epochs 10 and 20) over 30 epochs'
            in one_line(README))
    assert cfg.param_scheduler.type == 'MultiStepLR'
    assert cfg.param_scheduler.by_epoch
    assert cfg.param_scheduler.milestones == [10, 20]
    assert cfg.param_scheduler.gamma == 0.1
    assert cfg.train_cfg.max_epochs == 30
    # and what MMEngine makes of it, epoch by epoch
    from mmengine.registry import PARAM_SCHEDULERS
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)],
                                lr=cfg.optim_wrapper.optimizer.lr)
    scheduler = PARAM_SCHEDULERS.build(
        dict(cfg.param_scheduler, optimizer=optimizer))
    lrs = []
    for _ in range(30):
        lrs.append(optimizer.param_groups[0]['lr'])
        optimizer.step()
        scheduler.step()
    assert lrs == pytest.approx([0.01] * 10 + [0.001] * 10 + [0.0001] * 10)


def test_three_checkpoints_kept_and_the_best(cfg):
    assert 'checkpoint per epoch (the last 3 kept) and ' \
        '`best_accuracy_top1_epoch_<N>.pth`' in one_line(README)
    hook = cfg.default_hooks.checkpoint
    assert hook.interval == 1 and hook.max_keep_ckpts == 3
    assert hook.save_best == 'accuracy/top1' and hook.rule == 'greater'


@pytest.mark.parametrize('cores, local_world_size, workers', [
    (1, 1, 2), (2, 1, 2), (4, 1, 3), (8, 1, 7), (17, 1, 16), (64, 1, 16),
    (16, 4, 3), (8, 8, 2)
])
def test_worker_count_rule(monkeypatch, cores, local_world_size, workers):
    """docs/speed.md: as many loader workers as the process has cores but
    one (2 to 16); under torchrun the machine's processes share them."""
    speed = one_line((REPO_ROOT / 'docs' / 'speed.md').read_text())
    assert 'as many loader workers as the process has cores but one ' \
        '(2 to 16)' in speed
    monkeypatch.setattr(os, 'sched_getaffinity',
                        lambda pid: set(range(cores)), raising=False)
    monkeypatch.setenv('LOCAL_WORLD_SIZE', str(local_world_size))
    loaded = Config.fromfile(config_path('resnet50_flowers.py'))
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        # resolved on the machine, by FlowerRunner, not in the config
        assert loaded[loader].num_workers == 'auto', loader
        assert resolve_num_workers(
            loaded[loader].num_workers) == workers, loader


# The report's table (README "Target: the report's results"), as literals.
REPORT = {
    'table1': [90.2, 91.4, 92.6],
    'table2': [92.6, 94.5, 94.2],
    'table3': [94.5, 93.2],
}


def test_report_figures_in_readme_and_in_the_sweep():
    for row in ('| batch size (ResNet-18) | 32 / 64 / 128 | '
                '90.2 / 91.4 / 92.6 |',
                '| backbone | ResNet-18 / ResNet-50 / DenseNet | '
                '92.6 / 94.5 / 94.2 |',
                '| ResNet-50 freezing | stem + 2 stages frozen / nothing '
                'frozen | 94.5 / 93.2 |'):
        assert row in README, row
    # what tools/sweep.py compares its results with
    assert {name: [cell.report_top1 for cell in experiment.cells]
            for name, experiment in EXPERIMENTS.items()} == REPORT
