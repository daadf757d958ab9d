"""tools/train.py and tools/test.py end to end, run as a user runs them."""
import json
import math
import os
import pickle
import re
from pathlib import Path

import pytest
import torch
from conftest import REPO_ROOT, config_path, run_tool, tiny_cfg_options

TRAIN = REPO_ROOT / 'tools' / 'train.py'
TEST = REPO_ROOT / 'tools' / 'test.py'
MMPRETRAIN_TOOLS = Path(__import__('mmpretrain').__file__).parent / '.mim' / \
    'tools'


def read_scalars(work_dir: Path) -> list:
    """Every record of the newest run's vis_data/scalars.json."""
    runs = sorted(p for p in work_dir.iterdir()
                  if (p / 'vis_data' / 'scalars.json').exists())
    assert runs, f'no scalars.json under {work_dir}'
    lines = (runs[-1] / 'vis_data' / 'scalars.json').read_text().splitlines()
    return [json.loads(line) for line in lines]


def val_top1_by_epoch(records) -> dict:
    return {
        r['step']: r['accuracy/top1']
        for r in records if 'accuracy/top1' in r
    }


# The shipped step decay (x0.1 at each milestone) with a milestone inside
# a short run, and the loss logged every iteration.
STEP_SCHEDULE = ['param_scheduler.milestones=[1]',
                 'default_hooks.logger.interval=1']


def train_options(data_root, checkpoint, epochs):
    return [*tiny_cfg_options(data_root, checkpoint, epochs=epochs),
            *STEP_SCHEDULE]


def lr_by_epoch(records) -> dict:
    """{epoch: the lr logged at each of its iterations}."""
    lrs = {}
    for r in records:
        if 'lr' in r:
            lrs.setdefault(r['epoch'], []).append(r['lr'])
    return lrs


@pytest.fixture(scope='module')
def trained_run(tmp_path_factory, flower_data_root, pretrained_ckpt):
    """One 2-epoch tools/train.py run of the main config on tiny data:
    (cwd, work dir, process, its scalars.json records)."""
    cwd = tmp_path_factory.mktemp('run')
    proc = run_tool([
        TRAIN,
        config_path('resnet50_flowers.py'), '--cfg-options',
        *train_options(flower_data_root, pretrained_ckpt, epochs=2)
    ],
                    cwd=cwd)
    work_dir = cwd / 'work_dirs' / 'resnet50_flowers'
    return cwd, work_dir, proc, read_scalars(work_dir)


def test_train_writes_checkpoints_logs_and_metrics(trained_run,
                                                   pretrained_ckpt):
    cwd, work_dir, proc, records = trained_run
    log = proc.stdout + proc.stderr
    names = sorted(p.name for p in work_dir.iterdir())
    assert 'epoch_1.pth' in names and 'epoch_2.pth' in names
    assert (work_dir / 'last_checkpoint').read_text().strip().endswith(
        'epoch_2.pth')
    best = [n for n in names if n.startswith('best_accuracy_top1_epoch_')]
    assert len(best) == 1, names
    # The pretrained weights were loaded from the local file, not the URL.
    assert f'load backbone in model from: {pretrained_ckpt}' in log
    assert 'download.openmmlab.com' not in log.split('Config:')[0]

    top1 = val_top1_by_epoch(records)
    assert sorted(top1) == [1, 2]
    # over the 15 val photos: a whole number of them right
    for value in top1.values():
        assert value * 15 / 100 == pytest.approx(round(value * 15 / 100),
                                                 abs=1e-4), top1
    best_epoch = int(re.search(r'epoch_(\d+)', best[0]).group(1))
    assert top1[best_epoch] == max(top1.values())
    # 20 photos in batches of 5, logged every iteration; a fresh 5-class
    # head on the random "pretrained" backbone starts near chance, ln 5
    losses = [r['loss'] for r in records if 'loss' in r]
    assert [r['iter'] for r in records if 'loss' in r] == list(range(1, 9))
    assert losses[0] == pytest.approx(math.log(5), abs=0.5), losses
    assert all(math.isfinite(loss) for loss in losses), losses


def test_lr_follows_the_step_schedule_epoch_by_epoch(trained_run):
    """What the run logged, not what the config says: lr 0.01, then x0.1
    after the milestone at epoch 1."""
    lrs = lr_by_epoch(trained_run[3])
    assert sorted(lrs) == [1, 2]
    assert lrs[1] == [0.01] * 4
    assert lrs[2] == pytest.approx([0.001] * 4)


def test_test_tool_reproduces_best_val_accuracy(trained_run, flower_data_root,
                                                pretrained_ckpt):
    cwd, work_dir, _, records = trained_run
    best = next(work_dir.glob('best_accuracy_top1_epoch_*.pth'))
    best_epoch = int(re.search(r'epoch_(\d+)', best.name).group(1))
    expected = val_top1_by_epoch(records)[best_epoch]

    proc = run_tool([
        TEST,
        config_path('resnet50_flowers.py'), best, '--out', 'preds.pkl',
        '--cfg-options', *tiny_cfg_options(flower_data_root, pretrained_ckpt)
    ],
                    cwd=cwd)
    reported = float(
        re.search(r'Epoch\(test\).*accuracy/top1: ([\d.]+)',
                  proc.stdout + proc.stderr).group(1))
    assert reported == pytest.approx(expected)

    with open(cwd / 'preds.pkl', 'rb') as f:
        preds = pickle.load(f)
    assert len(preds) == 15  # 3 val images x 5 classes
    correct = sum(int(p['pred_label']) == int(p['gt_label']) for p in preds)
    assert 100.0 * correct / len(preds) == pytest.approx(expected)


def test_resume_continues_from_the_latest_checkpoint(trained_run, tmp_path,
                                                     flower_data_root,
                                                     pretrained_ckpt):
    # In a work dir of its own, with the run's last checkpoint (linked):
    # the module's other tests read the run as it ended.
    cwd = tmp_path
    work_dir = cwd / 'work_dirs' / 'resnet50_flowers'
    work_dir.mkdir(parents=True)
    os.link(trained_run[1] / 'epoch_2.pth', work_dir / 'epoch_2.pth')
    (work_dir / 'last_checkpoint').write_text(str(work_dir / 'epoch_2.pth'))
    proc = run_tool([
        TRAIN,
        config_path('resnet50_flowers.py'), '--resume', '--cfg-options',
        *train_options(flower_data_root, pretrained_ckpt, epochs=3)
    ],
                    cwd=cwd)
    log = proc.stdout + proc.stderr
    assert 'Auto resumed from the latest checkpoint' in log
    assert 'resumed epoch: 2' in log
    # Only the third epoch ran: no epoch 1 or 2 training lines.
    assert set(re.findall(r'Epoch\(train\)\s+\[(\d+)\]', log)) == {'3'}
    assert (work_dir / 'epoch_3.pth').exists()
    ckpt = torch.load(work_dir / 'epoch_3.pth', map_location='cpu')
    assert ckpt['meta']['epoch'] == 3
    # the schedule resumed where it stopped, not at the base lr 0.01
    lrs = lr_by_epoch(read_scalars(work_dir))
    assert sorted(lrs) == [3] and lrs[3] == pytest.approx([0.001] * 4)


def test_resume_from_named_checkpoint_loads_safely(trained_run, tmp_path,
                                                   flower_data_root,
                                                   pretrained_ckpt):
    work_dir = trained_run[1]
    proc = run_tool([
        TRAIN,
        config_path('resnet50_flowers.py'), '--resume',
        work_dir / 'epoch_1.pth', '--work-dir', tmp_path / 'resumed',
        '--cfg-options',
        *tiny_cfg_options(flower_data_root, pretrained_ckpt, epochs=2)
    ],
                    cwd=tmp_path)
    assert 'resumed epoch: 1' in proc.stdout + proc.stderr
    assert (tmp_path / 'resumed' / 'epoch_2.pth').exists()


def test_train_flags_no_validate_and_auto_scale_lr(tmp_path, flower_data_root,
                                                  pretrained_ckpt):
    """--no-validate: no val loop, no accuracy, no best checkpoint;
    --auto-scale-lr: lr 0.01 for batch 32 becomes 0.01 * 5 / 32 at batch 5
    on one process, at every iteration."""
    # The val split at the config's own data root, so that a validation
    # that ran would find it; --no-validate leaves no val loader to set.
    (tmp_path / 'data').mkdir()
    (tmp_path / 'data' / 'flower_dataset').symlink_to(flower_data_root)
    work_dir = tmp_path / 'work_dir'
    proc = run_tool([
        TRAIN,
        config_path('resnet50_flowers.py'), '--work-dir', work_dir,
        '--no-validate', '--auto-scale-lr', '--cfg-options',
        *(o for o in tiny_cfg_options(flower_data_root, pretrained_ckpt,
                                      epochs=1)
          if not o.startswith(('val_', 'test_'))),
        'default_hooks.logger.interval=1'
    ], cwd=tmp_path)
    log = proc.stdout + proc.stderr
    assert 'Scaling the original LR by 0.15625' in log
    records = read_scalars(work_dir)
    lrs = lr_by_epoch(records)
    assert sorted(lrs) == [1] and lrs[1] == pytest.approx([0.0015625] * 4)
    assert not any('accuracy/top1' in r for r in records)
    assert 'Epoch(val)' not in log
    assert sorted(p.name for p in work_dir.glob('*.pth')) == ['epoch_1.pth']


def test_test_tool_dumps_metrics_with_out_item(trained_run, flower_data_root,
                                               pretrained_ckpt):
    """--out FILE --out-item metrics: the metrics dict, not predictions."""
    cwd, work_dir, _, records = trained_run
    out = cwd / 'metrics.pkl'
    run_tool([
        TEST,
        config_path('resnet50_flowers.py'), work_dir / 'epoch_2.pth', '--out',
        out, '--out-item', 'metrics', '--cfg-options',
        *tiny_cfg_options(flower_data_root, pretrained_ckpt)
    ], cwd=cwd)
    with open(out, 'rb') as f:
        metrics = pickle.load(f)
    assert isinstance(metrics, dict), type(metrics)
    assert metrics['accuracy/top1'] == pytest.approx(
        val_top1_by_epoch(records)[2])
    assert {'single-label/precision_classwise',
            'confusion_matrix/result'} <= set(metrics), sorted(metrics)


def test_mmpretrain_packaged_train_tool_runs_the_config(
        tmp_path, flower_data_root, pretrained_ckpt):
    """The configs are plain MMPretrain configs: its own tool runs them."""
    proc = run_tool([
        MMPRETRAIN_TOOLS / 'train.py',
        config_path('resnet50_flowers.py'), '--work-dir', tmp_path / 'wd',
        '--cfg-options',
        *tiny_cfg_options(flower_data_root, pretrained_ckpt, epochs=1)
    ], cwd=tmp_path)
    assert (tmp_path / 'wd' / 'epoch_1.pth').exists()
    assert 'accuracy/top1' in proc.stdout + proc.stderr


def test_test_tool_rejects_missing_checkpoint(tmp_path):
    proc = run_tool(
        [TEST, config_path('resnet50_flowers.py'), 'no/such/file.pth'],
        cwd=tmp_path,
        check=False)
    assert proc.returncode != 0
    assert 'checkpoint "no/such/file.pth" does not exist' in proc.stderr


def test_train_stops_when_pretrained_weights_cannot_be_fetched(
        tmp_path, flower_data_root, pretrained_ckpt):
    """Offline: the URL fails; the message says where and what to do."""
    url = 'http://127.0.0.1:9/resnet50_8xb32_in1k_20210831-ea4938fc.pth'
    opts = tiny_cfg_options(flower_data_root, pretrained_ckpt)
    opts[0] = f'model.backbone.init_cfg.checkpoint={url}'
    proc = run_tool(
        [TRAIN, config_path('resnet50_flowers.py'), '--cfg-options', *opts],
        cwd=tmp_path,
        env={'TORCH_HOME': str(tmp_path / 'torch_home')},
        check=False)
    assert proc.returncode != 0
    err = proc.stderr
    assert f'downloading {url} into the cache' in err
    assert str(tmp_path / 'torch_home' / 'hub' / 'checkpoints') in err
    assert ('--cfg-options model.backbone.init_cfg.checkpoint=/path/to/'
            'resnet50_8xb32_in1k_20210831-ea4938fc.pth') in err
    assert not list((tmp_path / 'work_dirs').rglob('*.pth'))
