"""DeviceAmpOptimWrapper: bf16/fp16/fp32 on the CPU and (simulated) GPU."""
import logging
from contextlib import contextmanager

import pytest
import torch
import torch.nn as nn
from mmengine.logging import MMLogger
from mmengine.optim import OptimWrapper

import flower_mm.utils.precision as precision
from flower_mm.engine import DeviceAmpOptimWrapper
from flower_mm.utils import resolve_amp_dtype


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
