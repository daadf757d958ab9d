"""Mixed precision, channels-last and the fast colour jitter (functional).

Speed itself is measured by benchmarks/throughput.py, not here.
"""
import json
import logging
from contextlib import contextmanager
import pickle
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn as nn
from conftest import (REPO_ROOT, config_path, make_calibrated_checkpoint,
                      make_flower_dataset, run_tool, tiny_cfg_options)
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.optim import OptimWrapper

import flower_mm.utils.precision as precision
from flower_mm.engine import ChannelsLastHook, DeviceAmpOptimWrapper
from flower_mm.transforms import FastColorJitter
from flower_mm.utils import (cpu_has_native_bf16, resolve_amp_dtype,
                             resolve_num_workers)

TRAIN = str(REPO_ROOT / 'tools' / 'train.py')
TEST = str(REPO_ROOT / 'tools' / 'test.py')
NATIVE_BF16 = cpu_has_native_bf16()


class TinyNet(nn.Module):

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.bn = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        self.conv_out = self.conv(x)
        return self.fc(self.bn(self.conv_out).relu().mean((2, 3)))


def train_step(wrapper, model, seed=0, check_grads=None):
    torch.manual_seed(seed)
    x, y = torch.randn(4, 3, 16, 16), torch.tensor([0, 1, 2, 3])
    with wrapper.optim_context(model):
        loss = nn.functional.cross_entropy(model(x), y)
    wrapper.backward(loss)
    if check_grads:
        check_grads(model)
    wrapper.step()
    wrapper.zero_grad()
    return loss


@contextmanager
def mmlogger_records():
    """Messages MMEngine's current logger emits inside the block."""
    records = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)


def make_wrapper(model, **kwargs):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    return DeviceAmpOptimWrapper(optimizer=optimizer, **kwargs)


# ------------------------------------------------------ DeviceAmpOptimWrapper


def test_wrapper_trains_in_bf16_on_cpu_with_fp32_grads():
    torch.manual_seed(0)
    model = TinyNet()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    wrapper = make_wrapper(model, dtype='bfloat16')
    seen = {}
    model.fc.register_forward_hook(
        lambda m, args, out: seen.update(fc_in=args[0].dtype, fc=out.dtype))
    grad_dtypes = {}
    loss = train_step(
        wrapper, model, check_grads=lambda m: grad_dtypes.update(
            {n: p.grad.dtype for n, p in m.named_parameters()}))

    assert model.conv_out.dtype == torch.bfloat16  # conv ran in bf16
    assert seen['fc'] == torch.bfloat16  # so did the linear layer
    assert loss.dtype == torch.float32  # cross-entropy autocasts to fp32
    assert len(grad_dtypes) == 6
    for name, param in model.named_parameters():
        assert param.dtype == torch.float32, name  # master weights stay fp32
        assert grad_dtypes[name] == torch.float32, name
        assert not torch.equal(param, before[name]), f'{name} not updated'
    assert not wrapper.loss_scaler.is_enabled()  # bf16 needs no scaling
    assert wrapper.precision == 'bfloat16 autocast'
    # outside the context, fp32 again
    assert model(torch.randn(1, 3, 8, 8)).dtype == torch.float32


def test_wrapper_float32_matches_plain_optim_wrapper():
    results = []
    for build in (lambda m: make_wrapper(m, dtype='float32'),
                  lambda m: OptimWrapper(
                      torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9))):
        torch.manual_seed(0)
        model = TinyNet()
        wrapper = build(model)
        for step in range(3):
            train_step(wrapper, model, seed=step)
        assert model.conv_out.dtype == torch.float32
        results.append(model.state_dict())
    for key in results[0]:
        torch.testing.assert_close(results[0][key], results[1][key])


@pytest.mark.parametrize('native', [True, False])
def test_auto_dtype_follows_native_bf16(monkeypatch, native):
    monkeypatch.setattr(precision, 'cpu_has_native_bf16', lambda: native)
    model = TinyNet()
    with mmlogger_records() as records:
        wrapper = make_wrapper(model)  # dtype='auto'
    log = '\n'.join(records)
    train_step(wrapper, model)
    if native:
        assert wrapper.cast_dtype == torch.bfloat16
        assert model.conv_out.dtype == torch.bfloat16
    else:
        assert wrapper.cast_dtype is None
        assert model.conv_out.dtype == torch.float32
        assert 'no native bfloat16' in log
        assert 'optim_wrapper.dtype="bfloat16"' in log


def test_wrapper_state_dict_round_trip_and_resume_sources():
    torch.manual_seed(0)
    model = TinyNet()
    wrapper = make_wrapper(model, dtype='bfloat16')
    train_step(wrapper, model)
    state = wrapper.state_dict()
    assert state['loss_scaler'] == {}  # a disabled scaler: nothing to keep
    momentum = {
        i: s['momentum_buffer'].clone()
        for i, s in state['state'].items()
    }

    # resumed by a new wrapper
    fresh = make_wrapper(model, dtype='bfloat16')
    fresh.load_state_dict(wrapper.state_dict())
    for i, buf in momentum.items():
        torch.testing.assert_close(fresh.state_dict()['state'][i]
                                   ['momentum_buffer'], buf)
    # from a plain OptimWrapper checkpoint (no loss_scaler key)
    plain = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1,
                                         momentum=0.9))
    plain.optimizer.load_state_dict(wrapper.optimizer.state_dict())
    make_wrapper(model, dtype='bfloat16').load_state_dict(plain.state_dict())
    # from a GPU fp16 run: its scaler state is ignored on the CPU
    gpu_state = dict(wrapper.state_dict(), loss_scaler={'scale': 1024.})
    make_wrapper(model, dtype='bfloat16').load_state_dict(gpu_state)

    # a CPU checkpoint resumed on a GPU: the empty scaler state is dropped
    # instead of failing in GradScaler.load_state_dict
    scaler = torch.amp.GradScaler('cpu', init_scale=8.)
    fresh.loss_scaler = scaler
    fresh.load_state_dict(wrapper.state_dict())
    assert scaler.get_scale() == 8.


@pytest.mark.parametrize('dtype, message', [
    ('float16', 'autocast on the CPU runs in bfloat16 only'),
    ('int8', 'is not a mixed-precision dtype'),
])
def test_wrapper_rejects_bad_dtype(dtype, message):
    with pytest.raises(ValueError, match=message) as err:
        make_wrapper(TinyNet(), dtype=dtype)
    assert 'optim_wrapper.dtype' in str(err.value)


def test_gpu_dtype_rules(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_bf16_supported',
                        lambda including_emulation=True: False)
    monkeypatch.setattr(torch.cuda, 'get_device_name', lambda: 'Old GPU')
    assert resolve_amp_dtype('auto', 'cuda') == torch.float16
    assert resolve_amp_dtype(None, 'cuda') == torch.float16
    assert resolve_amp_dtype('float32', 'cuda') is None
    with pytest.raises(ValueError, match='Old GPU.*no native bfloat16'):
        resolve_amp_dtype('bfloat16', 'cuda')
    monkeypatch.setattr(torch.cuda, 'is_bf16_supported',
                        lambda including_emulation=True: True)
    assert resolve_amp_dtype('bfloat16', 'cuda') == torch.bfloat16
    assert resolve_amp_dtype(torch.bfloat16, 'cuda') == torch.bfloat16


def test_wrapper_on_a_gpu_is_mmengines_amp_wrapper(monkeypatch):
    """The GPU branch, simulated: what is built, not what runs."""
    import mmengine.optim.optimizer.amp_optimizer_wrapper as mmengine_amp

    import flower_mm.engine.optimizers.device_amp_optim_wrapper as module
    monkeypatch.setattr(module, 'get_device', lambda: 'cuda')
    monkeypatch.setattr(mmengine_amp, 'is_cuda_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'is_bf16_supported',
                        lambda including_emulation=True: True)
    fp16 = make_wrapper(TinyNet(), loss_scale=512.)
    assert fp16.cast_dtype == torch.float16
    assert fp16._scale_update_param == 512.  # AmpOptimWrapper's static scale
    assert isinstance(fp16.loss_scaler, torch.amp.GradScaler)
    bf16 = make_wrapper(TinyNet(), dtype='bfloat16')
    assert bf16.cast_dtype == torch.bfloat16
    assert not bf16.loss_scaler.is_enabled()  # no scaling for bf16
    assert bf16.precision == 'bfloat16 autocast'
    fp32 = make_wrapper(TinyNet(), dtype='float32')
    assert fp32.cast_dtype is None and not fp32.loss_scaler.is_enabled()


def test_train_amp_flag_selects_device_wrapper():
    import importlib.util
    spec = importlib.util.spec_from_file_location('train_tool', TRAIN)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    cfg = Config(dict(optim_wrapper=dict(type='OptimWrapper',
                                         optimizer=dict(type='SGD', lr=1))))
    args = tool.get_args_parser().parse_args(['x.py', '--amp'])
    cfg = tool.merge_args(cfg, args)
    assert cfg.optim_wrapper.type == 'DeviceAmpOptimWrapper'
    assert cfg.optim_wrapper.loss_scale == 'dynamic'


# ------------------------------------------------------------ ChannelsLast


def build_classifier():
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    return MODELS.build(
        dict(
            type='ImageClassifier',
            backbone=dict(type='ResNet', depth=18),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(type='LinearClsHead', num_classes=5, in_channels=512),
            data_preprocessor=dict(
                type='ClsDataPreprocessor',
                mean=[123.675, 116.28, 103.53],
                std=[58.395, 57.12, 57.375],
                to_rgb=True)))


def test_channels_last_hook_converts_model_inputs_and_checkpoints():
    torch.manual_seed(0)
    model = build_classifier().eval()
    reference = build_classifier().eval()
    reference.load_state_dict(model.state_dict())
    runner = SimpleNamespace(model=model)
    hook = ChannelsLastHook()
    hook.before_run(runner)

    conv = model.backbone.conv1.weight
    assert conv.is_contiguous(memory_format=torch.channels_last)
    assert not conv.is_contiguous()
    batch = dict(inputs=torch.randint(0, 256, (2, 3, 32, 32),
                                      dtype=torch.uint8))
    inputs = model.data_preprocessor(batch, False)['inputs']
    assert inputs.is_contiguous(memory_format=torch.channels_last)
    assert not inputs.is_contiguous()
    with torch.no_grad():
        torch.testing.assert_close(
            model(inputs, mode='tensor'),
            reference(reference.data_preprocessor(batch, False)['inputs'],
                      mode='tensor'),
            rtol=1e-4,
            atol=1e-4)

    # checkpoints are saved NCHW-contiguous, loadable anywhere
    checkpoint = dict(state_dict=model.state_dict())
    hook.before_save_checkpoint(runner, checkpoint)
    assert all(v.is_contiguous() for v in checkpoint['state_dict'].values())
    fresh = build_classifier()
    fresh.load_state_dict(checkpoint['state_dict'])
    for key, value in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value), key

    hook.after_run(runner)  # inputs stay as the preprocessor makes them
    inputs = model.data_preprocessor(batch, False)['inputs']
    assert inputs.is_contiguous()


# -------------------------------------------------------- MallocTuningHook

MALLOC_PROBE = """
import ctypes, platform, resource, sys, torch
sys.path.insert(0, {root!r})
from flower_mm.engine.hooks import MallocTuningHook

if platform.libc_ver()[0] == 'glibc':
    # glibc's start-up settings, without its adaptation to what is freed
    libc = ctypes.CDLL('libc.so.6')
    libc.mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD
    libc.mallopt(-1, 128 * 1024)  # M_TRIM_THRESHOLD

def faults():  # page faults of 20 allocations of a 24 MiB tensor
    start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(20):
        torch.empty(24 * 2**20, dtype=torch.uint8).fill_(1)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start

before = faults()
MallocTuningHook(enabled={enabled}).before_run(None)
faults()  # the first allocation after the change still maps pages
print(platform.libc_ver()[0], before, faults())
"""


@pytest.mark.parametrize('enabled', [True, False])
def test_malloc_tuning_hook_stops_page_faulting_reused_memory(
        tmp_path, enabled):
    # A fresh process: the allocator settings are process-wide.
    proc = run_tool(['-c', MALLOC_PROBE.format(root=str(REPO_ROOT),
                                               enabled=enabled)],
                    cwd=tmp_path)
    libc, before, after = proc.stdout.split()[-3:]
    before, after = int(before), int(after)
    if libc != 'glibc' or not enabled:  # nothing to tune, or asked not to
        assert after > before / 2, (before, after)
        assert 'MallocTuningHook:' not in proc.stdout
    else:
        assert before > 1000  # every allocation mapped fresh pages
        assert after < before / 20, (before, after)
        assert 'glibc mmap threshold 32 MiB' in proc.stdout


def test_malloc_tuning_hook_checks_its_arguments():
    from flower_mm.engine import MallocTuningHook
    with pytest.raises(ValueError, match='mmap_threshold=.*glibc'):
        MallocTuningHook(mmap_threshold=64 * 2**20)
    with pytest.raises(ValueError, match='trim_threshold=0 must be'):
        MallocTuningHook(trim_threshold=0)


# --------------------------------------------------------- FastColorJitter


@pytest.mark.parametrize('kwargs, max_diff', [
    (dict(brightness=0.4), 0),
    (dict(saturation=0.4), 0),
    (dict(hue=0.1), 0),
    (dict(contrast=0.4), 1),  # float32 blend vs table: rounding
    (dict(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1), 3),
])
def test_fast_color_jitter_matches_mmpretrain(kwargs, max_diff):
    from mmpretrain.datasets.transforms import ColorJitter
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
    img[10:30, 10:30] = (30, 160, 220)  # some saturated colour
    reference, fast = ColorJitter(**kwargs, backend='cv2'), \
        FastColorJitter(**kwargs)
    changed, diffs = 0, []
    for seed in range(30):
        np.random.seed(seed)
        expected = reference.transform(dict(img=img.copy()))['img']
        np.random.seed(seed)
        result = fast.transform(dict(img=img.copy()))['img']
        assert result.dtype == np.uint8 and result.shape == img.shape
        diff = np.abs(result.astype(int) - expected.astype(int))
        assert diff.max() <= max_diff, f'seed {seed}: {diff.max()}'
        diffs.append(diff.mean())
        changed += int(np.abs(result.astype(int) - img).mean() > 1)
    assert np.mean(diffs) < 0.01  # differences are rare rounding cases
    assert changed >= 20  # it does jitter

    # float images take MMPretrain's own code path
    if len(kwargs) < 4:
        return
    np.random.seed(3)
    expected = reference.transform(dict(img=img.astype(np.float32)))['img']
    np.random.seed(3)
    result = fast.transform(dict(img=img.astype(np.float32)))['img']
    np.testing.assert_allclose(result, expected)


# ----------------------------------------------------- configs and the tools


def test_flower_config_enables_the_speed_switches():
    cfg = Config.fromfile(config_path('resnet50_flowers.py'))
    assert cfg.optim_wrapper.type == 'DeviceAmpOptimWrapper'
    assert cfg.optim_wrapper.dtype == 'auto'
    assert cfg.val_cfg.type == 'AmpValLoop' and cfg.val_cfg.fp16 == 'auto'
    assert cfg.test_cfg.type == 'AmpTestLoop' and cfg.test_cfg.fp16 == 'auto'
    assert cfg.default_hooks.channels_last.type == 'ChannelsLastHook'
    assert cfg.default_hooks.malloc_tuning.type == 'MallocTuningHook'
    assert cfg.env_cfg.mp_cfg.opencv_num_threads == 0
    assert any(t.type == 'FastColorJitter' for t in cfg.train_pipeline)
    for loader in (cfg.train_dataloader, cfg.val_dataloader):
        assert loader.persistent_workers
        # Resolved by FlowerRunner.build_dataloader on each machine.
        assert loader.num_workers == 'auto'
        assert 2 <= resolve_num_workers(loader.num_workers) <= 16
        assert loader.collate_fn.type == 'default_collate'


@pytest.fixture(scope='module')
def speed_data(tmp_path_factory):
    """More images than the shared fixture: accuracy differences show."""
    return make_flower_dataset(
        tmp_path_factory.mktemp('speed') / 'flower_dataset',
        train_per_class=8,
        val_per_class=4)


def val_accuracies(work_dir: Path) -> list:
    scalars = next(work_dir.glob('*/vis_data/scalars.json'))
    accs = [
        json.loads(line)['accuracy/top1']
        for line in scalars.read_text().splitlines()
        if 'accuracy/top1' in line
    ]
    assert accs, f'no validation in {scalars}'
    return accs


def test_bf16_and_fp32_training_reach_the_same_accuracy(speed_data, tmp_path):
    """Same seed, same data: bf16 autocast loses no accuracy over fp32.

    The colour jitter is off and crops are large: the synthetic classes
    differ by colour only, so a few epochs suffice.
    """
    cfg = Config.fromfile(config_path('resnet50_flowers.py'))
    jitter = next(i for i, t in enumerate(cfg.train_pipeline)
                  if t.type == 'FastColorJitter')
    checkpoint = make_calibrated_checkpoint(tmp_path / 'r50.pth', speed_data)
    common = tiny_cfg_options(speed_data, checkpoint, epochs=8,
                              batch_size=8) + [
        'optim_wrapper.optimizer.lr=0.002',
        'train_dataloader.dataset.pipeline.1.crop_ratio_range=(0.5,1.0)',
        'train_dataloader.num_workers=1', 'val_dataloader.num_workers=1',
        'default_hooks.checkpoint.interval=100',
    ] + [
        f'train_dataloader.dataset.pipeline.{jitter}.{key}=0'
        for key in ('brightness', 'contrast', 'saturation', 'hue')
    ]
    accuracy, logs = {}, {}
    for dtype, fp16 in (('float32', False), ('bfloat16', True)):
        work_dir = tmp_path / dtype
        proc = run_tool([
            TRAIN, config_path('resnet50_flowers.py'), '--work-dir',
            work_dir, '--cfg-options', *common,
            f'optim_wrapper.dtype={dtype}', f'val_cfg.fp16={fp16}'
        ], cwd=tmp_path)
        logs[dtype] = proc.stdout + proc.stderr
        accuracy[dtype] = val_accuracies(work_dir)
    assert 'Mixed precision on cpu: float32 (no autocast)' in logs['float32']
    assert 'Mixed precision on cpu: bfloat16 autocast' in logs['bfloat16']
    assert 'AmpValLoop on cpu: bfloat16 inference' in logs['bfloat16']
    best = {dtype: max(accs) for dtype, accs in accuracy.items()}
    assert best['float32'] >= 95, accuracy
    # 20 val images: one image is 5 points
    assert abs(best['bfloat16'] - best['float32']) <= 5.0, accuracy


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


def test_channels_last_hook_can_be_switched_off():
    model = build_classifier()
    ChannelsLastHook(enabled=False).before_run(SimpleNamespace(model=model))
    assert model.backbone.conv1.weight.is_contiguous()
    batch = dict(inputs=torch.randint(0, 256, (1, 3, 16, 16),
                                      dtype=torch.uint8))
    assert model.data_preprocessor(batch, False)['inputs'].is_contiguous()


def test_float32_logits_makes_the_softmax_exact_and_cleans_up():
    model = nn.Module()
    model.head = nn.Linear(64, 5)
    features = torch.randn(8, 64) * 5

    def scores():
        with torch.autocast('cpu', dtype=torch.bfloat16):
            return model.head(features).softmax(1)

    assert scores().dtype == torch.bfloat16  # what ClsHead.predict got
    with precision.float32_logits(model):
        inside = scores()
    assert inside.dtype == torch.float32
    assert inside.sum(1).sub(1).abs().max() < 1e-6
    assert not model.head._forward_hooks  # removed on exit
    assert scores().dtype == torch.bfloat16
    headless = nn.Linear(64, 5)
    with precision.float32_logits(headless):  # nothing to cast: left as is
        assert not headless._forward_hooks
