"""Mixed precision and channels-last through tools/train.py and tools/test.py.

Speed itself is measured by benchmarks/throughput.py, not here.
"""
import json
import pickle
import re
from pathlib import Path

import torch
from conftest import REPO_ROOT, config_path, run_tool, tiny_cfg_options
from mmengine.config import Config

from flower_mm.utils import cpu_has_native_bf16

TRAIN = str(REPO_ROOT / 'tools' / 'train.py')
TEST = str(REPO_ROOT / 'tools' / 'test.py')
NATIVE_BF16 = cpu_has_native_bf16()


def test_train_amp_flag_selects_device_wrapper():
    from flower_mm.cli import train as tool
    cfg = Config(dict(optim_wrapper=dict(type='OptimWrapper',
                                         optimizer=dict(type='SGD', lr=1))))
    args = tool.get_args_parser().parse_args(['x.py', '--amp'])
    cfg = tool.merge_args(cfg, args)
    assert cfg.optim_wrapper.type == 'DeviceAmpOptimWrapper'
    assert cfg.optim_wrapper.loss_scale == 'dynamic'


def val_accuracies(work_dir: Path) -> list:
    scalars = next(work_dir.glob('*/vis_data/scalars.json'))
    accs = [
        json.loads(line)['accuracy/top1']
        for line in scalars.read_text().splitlines()
        if 'accuracy/top1' in line
    ]
    assert accs, f'no validation in {scalars}'
    return accs


def test_bf16_and_fp32_training_reach_the_same_accuracy(learned_model,
                                                       tmp_path):
    """Same seed, data and recipe: bf16 autocast learns what fp32 learns.

    ``learned_model`` was trained in the CPU's default precision; this run
    takes the other one, so the pair is always fp32 and bf16.
    """
    fp32_default = 'Mixed precision on cpu: float32 (no autocast)' in \
        learned_model.train_log
    other = 'bfloat16' if fp32_default else 'float32'
    work_dir = tmp_path / other
    proc = run_tool([
        TRAIN, learned_model.config, '--work-dir', work_dir, '--cfg-options',
        *learned_model.cfg_options, f'optim_wrapper.dtype={other}',
        f'val_cfg.fp16={other == "bfloat16"}',
        'default_hooks.checkpoint.interval=100'
    ], cwd=tmp_path, timeout=1800)
    log = proc.stdout + proc.stderr
    logs = {other: log, 'float32' if fp32_default else 'bfloat16':
            learned_model.train_log}
    assert 'Mixed precision on cpu: float32 (no autocast)' in logs['float32']
    assert 'Mixed precision on cpu: bfloat16 autocast' in logs['bfloat16']
    assert 'AmpValLoop on cpu: bfloat16 inference' in logs['bfloat16']
    accuracy = {other: val_accuracies(work_dir)}
    accuracy['float32' if fp32_default else 'bfloat16'] = \
        learned_model.val_accuracies
    assert min(acc[-1] for acc in accuracy.values()) >= 90, accuracy
    # 20 val images: one image is 5 points
    assert abs(accuracy['bfloat16'][-1] -
               accuracy['float32'][-1]) <= 5.0, accuracy


def test_train_and_test_tools_with_amp_and_channels_last(
        flower_data_root, pretrained_ckpt, tmp_path):
    """--amp through both tools: bf16 on the CPU, fp32 predictions out."""
    opts = tiny_cfg_options(flower_data_root, pretrained_ckpt, epochs=1) + [
        'train_dataloader.num_workers=1', 'val_dataloader.num_workers=1',
        'test_dataloader.num_workers=1'
    ]
    proc = run_tool([
        TRAIN, config_path('resnet50_flowers.py'), '--amp', '--cfg-options',
        *opts, 'optim_wrapper.dtype=bfloat16'
    ], cwd=tmp_path)
    log = proc.stdout + proc.stderr
    assert 'Mixed precision on cpu: bfloat16 autocast' in log
    assert 'ChannelsLastHook: model and inputs in channels-last' in log
    assert 'MallocTuningHook: glibc mmap threshold 32 MiB' in log
    expected = 'bfloat16' if NATIVE_BF16 else 'float32'
    assert f'AmpValLoop on cpu: {expected} inference' in log
    work_dir = tmp_path / 'work_dirs' / 'resnet50_flowers'
    dumped = Config.fromfile(next(work_dir.glob('*/vis_data/config.py')))
    assert dumped.optim_wrapper.type == 'DeviceAmpOptimWrapper'

    checkpoint = torch.load(work_dir / 'epoch_1.pth', weights_only=False)
    assert all(v.is_contiguous() for v in checkpoint['state_dict'].values())
    assert checkpoint['optimizer']['loss_scaler'] == {}

    preds = tmp_path / 'preds.pkl'
    proc = run_tool([
        TEST, config_path('resnet50_flowers.py'), work_dir / 'epoch_1.pth',
        '--amp', '--out', preds, '--cfg-options', *opts
    ], cwd=tmp_path)
    log = proc.stdout + proc.stderr
    assert 'AmpTestLoop on cpu: bfloat16 inference' in log
    assert re.search(r'accuracy/top1: \d+\.\d+', log)
    with open(preds, 'rb') as f:
        samples = pickle.load(f)
    assert len(samples) == 15
    scores = samples[0]['pred_score']
    assert scores.dtype == torch.float32  # not bf16: numpy can read it
    # softmax of fp32 logits: the scores sum to 1 (bf16's summed to 0.9987)
    assert abs(float(scores.sum()) - 1) < 1e-5
    scores.numpy()

    # and the NCHW fp32 path reads the same checkpoint
    proc = run_tool([
        TEST, config_path('resnet50_flowers.py'), work_dir / 'epoch_1.pth',
        '--cfg-options', *opts, 'default_hooks.channels_last.enabled=False',
        'test_cfg.fp16=False'
    ], cwd=tmp_path)
    log = proc.stdout + proc.stderr
    assert 'AmpTestLoop on cpu: float32 inference' in log
    assert 'channels-last' not in log
