"""Which mixed precision pays off on the device a run uses.

bf16 autocast on the CPU is fast only where the CPU computes in bf16 natively
(x86 AVX512-BF16 or AMX, Arm BF16); elsewhere oneDNN emulates it and training
gets slower than fp32. CUDA GPUs always gain from fp16 autocast.
"""
from typing import Optional, Union

import torch
from mmengine.device import get_device

# Device types whose autocast MMEngine's AmpOptimWrapper supports.
ACCELERATORS = ('cuda', 'npu', 'mlu', 'musa')
# Values a config may give for an autocast dtype.
AMP_DTYPES = ('auto', 'float16', 'bfloat16', 'float32')


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
