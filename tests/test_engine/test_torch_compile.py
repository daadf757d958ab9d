"""torch.compile in training (FlowerRunner's ``compile``): a compiled run
on the tiny data resumes exactly, its checkpoints load in eager code and in
MMPretrain's inferencer; ``'auto'`` keeps short runs eager; no compiler is
one error line. A ResNet-18 cut to its first stage, at 64 px: compiling
its graphs (training, validation) takes half the time of the whole
ResNet-18's, and the second run reads them from Inductor's cache."""
import sys
from pathlib import Path

import pytest
import torch
from conftest import (REPO_ROOT, config_path, load_tool, run_tool,
                      tiny_cfg_options)

from flower_mm.datasets import FLOWER_CLASSES
from flower_mm.experiments import parse_cfg_options
from flower_mm.utils import merge_cfg_options
from flower_mm.engine.runner import compile_pays, compiler_unavailable_reason
from flower_mm.engine.runner.torch_compile import MIN_INFER_IMAGES

CONFIG = config_path('resnet18_flowers.py')
# resnet18_flowers.py with one stage of the ResNet (64 channels).
ONE_STAGE = ['model.backbone.num_stages=1', 'model.backbone.out_indices=(0,)',
             'model.backbone.strides=(1,)', 'model.backbone.dilations=(1,)',
             'model.backbone.frozen_stages=-1', 'model.head.in_channels=64']


@pytest.fixture(scope='module')
def compiled_runs(tmp_path_factory, flower_data_root, resnet18_ckpt):
    """tools/train.py with compile=True for 2 epochs, and again resumed
    from its first epoch's checkpoint into another work dir."""
    root = tmp_path_factory.mktemp('compiled')
    options = tiny_cfg_options(flower_data_root, resnet18_ckpt, epochs=2,
                               batch_size=5) + ONE_STAGE + [
        'compile=True', 'randomness.deterministic=True']
    logs = {}
    for name, extra in (('whole', []), ('resumed', [
            '--resume', root / 'whole' / 'epoch_1.pth'])):
        proc = run_tool([REPO_ROOT / 'tools' / 'train.py', CONFIG,
                         '--work-dir', root / name, *extra,
                         '--cfg-options', *options], cwd=root)
        logs[name] = proc.stdout + proc.stderr
    return root, logs


def state_dict(path: Path) -> dict:
    return torch.load(path, map_location='cpu', weights_only=True)[
        'state_dict']


def test_compiled_training_resumes_exactly(compiled_runs):
    root, logs = compiled_runs
    for log in logs.values():
        assert "compile: the model's forward is compiled (Inductor)" in log
        assert 'Epoch(val) [2]' in log  # validation ran compiled too
    whole = state_dict(root / 'whole' / 'epoch_2.pth')
    resumed = state_dict(root / 'resumed' / 'epoch_2.pth')
    assert whole.keys() == resumed.keys()
    first = state_dict(root / 'whole' / 'epoch_1.pth')
    # The second epoch changed the trained weights, the same way in both.
    assert not torch.equal(first['head.fc.weight'], whole['head.fc.weight'])
    for key in whole:
        assert torch.equal(whole[key], resumed[key]), key


def test_compiled_checkpoints_load_in_eager_code(compiled_runs,
                                                 flower_data_root):
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmpretrain.apis import ImageClassificationInferencer
    from mmpretrain.registry import MODELS
    root, _ = compiled_runs
    checkpoint = root / 'whole' / 'epoch_2.pth'
    weights = state_dict(checkpoint)
    assert not any('_orig_mod' in key for key in weights)
    cfg = merge_cfg_options(Config.fromfile(CONFIG),
                            parse_cfg_options(ONE_STAGE))
    cfg.model.backbone.init_cfg = None
    init_default_scope('mmpretrain')
    model = MODELS.build(cfg.model)
    model.load_state_dict(weights, strict=True)  # every key, no extra
    photos = sorted(str(p) for p in flower_data_root.glob('val/*/*.jpg'))
    inferencer = ImageClassificationInferencer(
        model=cfg, pretrained=str(checkpoint), device='cpu')
    assert list(inferencer.classes) == list(FLOWER_CLASSES)
    results = inferencer(photos, batch_size=5)
    assert len(results) == len(photos) == 15
    # The inferencer holds the checkpoint's weights, as loaded above.
    for name, value in inferencer.model.state_dict().items():
        assert torch.equal(value, weights[name]), name


def test_auto_keeps_training_eager(learned_model):
    """The session's training did not compile, and the log says why."""
    assert ("compile='auto': eager (whole training runs were not measured "
            "faster compiled") in learned_model.train_log
    assert 'compile: the model' not in learned_model.train_log


def test_compile_pays_only_for_enough_images(monkeypatch):
    import flower_mm.engine.runner.torch_compile as torch_compile
    monkeypatch.setattr(torch_compile, 'cpu_has_native_bf16', lambda: True)
    assert compile_pays('cpu', MIN_INFER_IMAGES - 1, training=False) == (
        False, f'{MIN_INFER_IMAGES - 1:,} inference images, fewer than the '
        f'{MIN_INFER_IMAGES:,} that repay compiling')
    assert compile_pays('cpu', MIN_INFER_IMAGES, training=False) == (
        (True, f'{MIN_INFER_IMAGES:,} inference images on a CPU with '
         'native bf16')
        if compiler_unavailable_reason('cpu') is None else
        (False, compiler_unavailable_reason('cpu')))
    # A whole training run was measured slower compiled, however long.
    assert compile_pays('cpu', 10**9, training=True) == (
        False, 'whole training runs were not measured faster compiled '
        '(docs/benchmarks.md#backends)')
    assert not compile_pays('cuda', 10**9, training=False)[0]
    monkeypatch.setattr(torch_compile, 'cpu_has_native_bf16', lambda: False)
    assert compile_pays('cpu', 10**9, training=False) == (
        False, 'not measured faster on a CPU without native bf16')


def test_compiling_without_a_compiler_is_one_error_line(
        monkeypatch, tmp_path, flower_data_root, resnet18_ckpt):
    import torch._inductor.config as inductor
    monkeypatch.setattr(inductor.cpp, 'cxx', (None, '/nonexistent/g++'))
    assert 'No working C++ compiler' in compiler_unavailable_reason('cpu')
    monkeypatch.setattr(sys, 'argv', [
        'train.py', CONFIG, '--work-dir', str(tmp_path), '--cfg-options',
        *tiny_cfg_options(flower_data_root, resnet18_ckpt, epochs=1),
        'compile=True'])
    with pytest.raises(SystemExit) as exc:
        load_tool('train').main()
    message = str(exc.value.code)
    assert message.startswith('error: compile=True: torch.compile needs a '
                              'C++ compiler on the CPU')
    assert message.endswith('or set compile=False.')
    assert not list(tmp_path.rglob('*.pth'))  # before the first iteration
