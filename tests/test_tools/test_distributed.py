"""Data-parallel runs on a machine without GPUs: gloo, 2 processes."""
import json
import os
import pickle
import re
import socket
import subprocess
import sys

import torch
import torch.multiprocessing as mp
from conftest import REPO_ROOT, config_path, tiny_cfg_options

from flower_mm.datasets import FLOWER_CLASSES

# 7 samples over 2 ranks: DefaultSampler pads rank 1 with sample 0 again.
NUM_SAMPLES = 7
CORRECT = {0, 2, 5}  # 3 of 7; counting the padded sample 0 would give 4/8


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _evaluate_on_rank(rank, port, out_dir):
    # As Slurm sets it: exercises FlowerRunner's CPU init for --launcher
    # slurm, with the nccl backend that the configs inherit.
    os.environ.update(
        SLURM_PROCID=str(rank),
        SLURM_LOCALID=str(rank),
        SLURM_NTASKS='2',
        SLURM_NODELIST='localhost',
        MASTER_ADDR='127.0.0.1',
        MASTER_PORT=str(port))
    from mmengine.dataset import DefaultSampler
    from mmengine.dist import get_dist_info
    from mmengine.evaluator import Evaluator
    from mmpretrain.evaluation import Accuracy
    from mmpretrain.structures import DataSample

    from flower_mm.engine.runner import init_cpu_dist

    init_cpu_dist('slurm', backend='nccl')
    sampler = DefaultSampler(list(range(NUM_SAMPLES)), shuffle=False)
    evaluator = Evaluator(Accuracy(topk=(1, )))
    indices = list(sampler)
    for index in indices:
        label = index % 5
        pred = label if index in CORRECT else (label + 1) % 5
        evaluator.process(
            [DataSample().set_gt_label(label).set_pred_label(pred)])
    metrics = evaluator.evaluate(NUM_SAMPLES)
    with open(os.path.join(out_dir, f'rank{rank}.json'), 'w') as f:
        json.dump(
            dict(
                dist_info=get_dist_info(),
                indices=indices,
                accuracy=metrics['accuracy/top1']), f)


def test_metrics_gathered_across_ranks(tmp_path):
    mp.spawn(
        _evaluate_on_rank,
        args=(free_port(), str(tmp_path)),
        nprocs=2,
        join=True)
    results = [
        json.loads((tmp_path / f'rank{rank}.json').read_text())
        for rank in range(2)
    ]
    assert [r['dist_info'] for r in results] == [[0, 2], [1, 2]]
    # Each rank saw 4 samples: sample 0 twice in all.
    assert [r['indices'] for r in results] == [[0, 2, 4, 6], [1, 3, 5, 0]]
    for result in results:
        assert abs(result['accuracy'] - 100 * len(CORRECT) / NUM_SAMPLES) \
            < 1e-4, result


def run_script(script, *args, cwd, port):
    # PYTHONPATH: dist_test_hooks.py (the test-only SaveRankParamsHook)
    env = dict(os.environ, PORT=str(port), PYTHON=sys.executable,
               PYTHONPATH=os.pathsep.join(
                   [str(REPO_ROOT / 'tests'),
                    os.environ.get('PYTHONPATH', '')]))
    proc = subprocess.run(['bash', str(REPO_ROOT / 'tools' / script), *args],
                          cwd=cwd,
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=600)
    assert proc.returncode == 0, \
        f'{script} exited {proc.returncode}\n{proc.stdout[-4000:]}\n' \
        f'{proc.stderr[-4000:]}'
    return proc


def test_two_process_cpu_train_and_test(tmp_path, flower_data_root,
                                        pretrained_ckpt):
    config = config_path('resnet50_flowers.py')
    options = tiny_cfg_options(flower_data_root, pretrained_ckpt, epochs=1)
    # The same config plus the test-only hook that saves each rank's
    # parameters (custom_imports are read when the file loads, so a file).
    with_hook = tmp_path / 'configs' / 'resnet50_flowers.py'
    with_hook.parent.mkdir()
    with_hook.write_text(
        f'_base_ = [{config!r}]\n'
        "custom_imports = dict(imports=['flower_mm.registration', "
        "'dist_test_hooks'], "
        'allow_failed_imports=False)\n'
        'default_hooks = dict(rank_params=dict(type="SaveRankParamsHook", '
        f'out_dir={str(tmp_path)!r}))\n')
    train = run_script(
        'dist_train.sh',
        str(with_hook),
        '2',
        '--cfg-options',
        *options,
        cwd=tmp_path,
        port=free_port())
    assert train.stdout.count('No GPU: distributed pytorch run with the '
                              "gloo backend instead of env_cfg.dist_cfg."
                              "backend='nccl'") == 1  # logged by rank 0
    work_dir = tmp_path / 'work_dirs' / 'resnet50_flowers'
    checkpoint = work_dir / 'epoch_1.pth'
    assert checkpoint.is_file()
    scalars = [
        json.loads(line)
        for line in next(work_dir.glob('*/vis_data/scalars.json')).read_text(
        ).splitlines()
    ]
    train_iters = [s['iter'] for s in scalars if 'loss' in s]
    # 20 images split over 2 processes, 5 per batch: 2 iterations, not 4.
    assert train_iters == [2]
    # Gradients were averaged: after 2 steps on different halves of the data
    # both ranks hold the same parameters, and they moved from the start.
    ranks = [torch.load(tmp_path / f'rank{r}_params.pth') for r in (0, 1)]
    assert ranks[0].keys() == ranks[1].keys()
    for name, param in ranks[0].items():
        torch.testing.assert_close(ranks[1][name], param, rtol=0, atol=1e-6,
                                   msg=f'{name} differs between ranks')
    start = torch.load(pretrained_ckpt)['state_dict']
    trained_name = 'backbone.layer4.2.conv3.weight'  # not frozen
    assert not torch.allclose(ranks[0][trained_name], start[trained_name])
    frozen_name = 'backbone.layer1.0.conv1.weight'
    assert torch.equal(ranks[0][frozen_name], start[frozen_name])
    val_accuracy = next(s['accuracy/top1'] for s in scalars
                        if 'accuracy/top1' in s)

    preds_file = tmp_path / 'preds.pkl'
    test = run_script(
        'dist_test.sh',
        config,
        str(checkpoint),
        '2',
        '--out',
        str(preds_file),
        '--cfg-options',
        *options,
        cwd=tmp_path,
        port=free_port())
    test_accuracy = float(
        re.search(r'Epoch\(test\).*accuracy/top1: ([\d.]+)',
                  test.stdout).group(1))
    with open(preds_file, 'rb') as f:
        preds = pickle.load(f)
    # 15 validation images over 2 ranks: 16 predicted, the padding dropped.
    expected_paths = sorted(
        str(flower_data_root / 'val' / c / f)
        for c in FLOWER_CLASSES
        for f in os.listdir(flower_data_root / 'val' / c))
    assert sorted(p['img_path'] for p in preds) == expected_paths
    correct = sum(int(p['pred_label']) == int(p['gt_label']) for p in preds)
    assert abs(test_accuracy - 100 * correct / len(expected_paths)) < 1e-2
    assert abs(test_accuracy - val_accuracy) < 1e-2
