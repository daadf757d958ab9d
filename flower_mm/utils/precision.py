"""Which mixed precision pays off on the device a run uses.

bf16 autocast on the CPU is fast only where the CPU computes in bf16 natively
(x86 AVX512-BF16 or AMX, Arm BF16); elsewhere oneDNN emulates it and training
gets slower than fp32. CUDA GPUs always gain from fp16 autocast.
"""
from contextlib import contextmanager
from typing import Iterator, Optional, Union

import torch
from mmengine.device import get_device

# Device types whose autocast MMEngine's AmpOptimWrapper supports.
ACCELERATORS = ('cuda', 'npu', 'mlu', 'musa')
# Values a config may give for an autocast dtype.
AMP_DTYPES = ('auto', 'float16', 'bfloat16', 'float32')
#: What ``--amp`` means in tools/train.py, tools/test.py and tools/sweep.py.
AMP_FLAG_HELP = (
    'mixed precision on any device: fp16 autocast on a GPU (with dynamic '
    'loss scaling when training); bf16 autocast on a CPU, fast where the CPU '
    'has native bf16 (AVX512-BF16, AMX), emulated and slower than fp32 where '
    'it has not. Without it the flower configs choose per device: fp16 on a '
    'GPU, bf16 on a CPU with native bf16, fp32 elsewhere (docs/speed.md)')


def amp_flag_dtype(device_type: Optional[str] = None) -> str:
    """The autocast dtype ``--amp`` asks for on ``device_type`` (default:
    MMEngine's :func:`get_device`): bfloat16 on a CPU, float16 elsewhere."""
    return 'bfloat16' if (device_type or get_device()) == 'cpu' else 'float16'


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 matrix products in hardware."""
    caps = torch.cpu.get_capabilities()
    return any(
        caps.get(flag, False)
        for flag in ('avx512_bf16', 'amx_bf16', 'bf16', 'sve_bf16'))


def resolve_amp_dtype(dtype: Union[str, torch.dtype, None] = 'auto',
                      device_type: Optional[str] = None,
                      key: str = 'dtype') -> Optional[torch.dtype]:
    """The autocast dtype to run with, or None for plain fp32.

    Args:
        dtype: ``'auto'`` (or None) picks per device: fp16 on a GPU, bf16 on
            a CPU with native bf16, fp32 on other CPUs. ``'float16'`` or
            ``'bfloat16'`` force that dtype, ``'float32'`` turns autocast off.
        device_type: ``'cuda'``, ``'cpu'``...; defaults to MMEngine's
            :func:`get_device`, the device the Runner puts the model on.
        key: The config key ``dtype`` came from, for error messages.
    """
    device_type = device_type or get_device()
    if isinstance(dtype, torch.dtype):
        dtype = str(dtype).replace('torch.', '')
    dtype = 'auto' if dtype is None else dtype
    if dtype not in AMP_DTYPES:
        raise ValueError(f'{key}={dtype!r} is not a mixed-precision dtype; '
                         f'use one of {", ".join(AMP_DTYPES)}.')
    if dtype == 'float32':
        return None
    if device_type == 'cpu':
        if dtype == 'float16':
            raise ValueError(
                f'{key}="float16": autocast on the CPU runs in bfloat16 only; '
                'use "bfloat16", "auto" or "float32".')
        if dtype == 'auto' and not cpu_has_native_bf16():
            return None
        return torch.bfloat16
    if dtype == 'bfloat16' and device_type == 'cuda' \
            and not torch.cuda.is_bf16_supported(including_emulation=False):
        raise ValueError(
            f'{key}="bfloat16": this GPU ({torch.cuda.get_device_name()}) '
            'has no native bfloat16; use "float16" or "auto".')
    return torch.float16 if dtype == 'auto' else getattr(torch, dtype)


def idle_autocast_dtype(device_type: str) -> torch.dtype:
    """A dtype to pass MMEngine's autocast with ``enabled=False``.

    It checks the dtype even then: CPUs accept only bf16, and on GPUs None
    calls the deprecated ``torch.get_autocast_gpu_dtype``.
    """
    return torch.bfloat16 if device_type == 'cpu' else torch.float16


def resolve_inference_dtype(fp16: Union[bool, str],
                            device_type: Optional[str] = None,
                            key: str = 'test_cfg.fp16'
                            ) -> Optional[torch.dtype]:
    """The autocast dtype for inference, or None for plain fp32.

    Args:
        fp16: As MMEngine's ``ValLoop``/``TestLoop`` take it, plus
            ``'auto'``: ``'auto'`` follows :func:`resolve_amp_dtype` (fp16
            on a GPU, bf16 on a CPU with native bf16, fp32 elsewhere),
            ``True`` forces fp16 on a GPU and bf16 on a CPU, ``False`` is
            fp32.
        device_type: ``'cuda'``, ``'cpu'``...; defaults to
            :func:`get_device`.
        key: The config key ``fp16`` came from, for error messages.
    """
    device_type = device_type or get_device()
    if fp16 == 'auto':
        return resolve_amp_dtype('auto', device_type, key)
    if fp16 is True:
        return resolve_amp_dtype(amp_flag_dtype(device_type), device_type,
                                 key)
    if fp16 is False:
        return None
    raise ValueError(f'{key}={fp16!r}: use True, False or "auto".')


@contextmanager
def float32_logits(model: torch.nn.Module) -> Iterator[None]:
    """Hand the classification head's logits on in fp32 while inside.

    Under autocast the head's linear layer returns bf16 or fp16 logits, and
    MMPretrain's ``ClsHead.predict`` takes their softmax in that precision:
    scores then summed to 0.9987 instead of 1. Cast to fp32 first, the
    softmax is exact; the logits keep the precision they were computed in.
    Does nothing for a model without a ``head``.
    """
    from mmengine.model import is_model_wrapper
    model = model.module if is_model_wrapper(model) else model
    head = getattr(model, 'head', None)
    handle = head.register_forward_hook(_output_to_float32) \
        if isinstance(head, torch.nn.Module) else None
    try:
        yield
    finally:
        if handle is not None:
            handle.remove()


def _output_to_float32(module, args, output):
    if isinstance(output, torch.Tensor) and output.is_floating_point():
        return output.float()
    return output


@contextmanager
def inference_precision(model: torch.nn.Module, device_type: str,
                        cast_dtype: Optional[torch.dtype]) -> Iterator[None]:
    """Autocast at ``cast_dtype`` (None: fp32), logits handed on in fp32.

    What validation, test and prediction run their forward passes in; see
    :func:`resolve_inference_dtype` and :func:`float32_logits`.
    """
    from mmengine.runner.amp import autocast
    with autocast(
            device_type=device_type,
            dtype=cast_dtype or idle_autocast_dtype(device_type),
            enabled=cast_dtype is not None), float32_logits(model):
        yield
