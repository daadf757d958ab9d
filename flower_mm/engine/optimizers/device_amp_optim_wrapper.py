"""Mixed-precision training on whatever device the Runner uses."""
from contextlib import contextmanager
from typing import Union

import torch
import torch.nn as nn
from mmengine.device import get_device
from mmengine.logging import print_log
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from mmengine.runner.amp import autocast
from mmpretrain.registry import OPTIM_WRAPPERS

from flower_mm.utils.precision import (ACCELERATORS, idle_autocast_dtype,
                                      resolve_amp_dtype)


@OPTIM_WRAPPERS.register_module()
class DeviceAmpOptimWrapper(AmpOptimWrapper):
    """MMEngine's :class:`AmpOptimWrapper`, on GPUs and on CPUs alike.

    MMEngine 0.10.7's ``AmpOptimWrapper`` refuses to start without a GPU,
    although ``torch.autocast`` runs bf16 on the CPU. This wrapper keeps its
    behaviour on GPUs (fp16 autocast with a dynamic ``GradScaler``) and
    reuses its backward/step/state-dict logic everywhere, with a disabled
    ``GradScaler`` (a pass-through) where no loss scaling is needed:

    - GPU, ``dtype='auto'`` or ``'float16'``: fp16 autocast, loss scaling
      as ``loss_scale`` says.
    - GPU, ``dtype='bfloat16'``: bf16 autocast, no loss scaling (bf16 has
      fp32's range). Refused on GPUs without native bf16.
    - CPU, ``dtype='auto'``: bf16 autocast where the CPU has native bf16
      (AVX512-BF16, AMX), else fp32 with a warning: emulated bf16 is slower.
      ``'bfloat16'`` forces bf16.
    - ``dtype='float32'``: no autocast, as :class:`OptimWrapper`.

    State dicts keep the ``loss_scaler`` key of ``AmpOptimWrapper``, so a run
    resumes on another device, or from a plain ``OptimWrapper`` checkpoint.

    Args:
        loss_scale (str | float | dict): ``GradScaler`` settings for fp16,
            as in ``AmpOptimWrapper``. Defaults to 'dynamic'.
        dtype (str, optional): 'auto', 'float16', 'bfloat16' or 'float32'.
            None means 'auto'. Defaults to 'auto'.
        **kwargs: Passed to :class:`OptimWrapper` (``optimizer``,
            ``clip_grad``, ``accumulative_counts``), or ``use_fsdp``.
    """

    def __init__(self,
                 loss_scale: Union[str, float, dict] = 'dynamic',
                 dtype: Union[str, torch.dtype, None] = 'auto',
                 **kwargs):
        self.device_type = get_device()
        cast_dtype = resolve_amp_dtype(dtype, self.device_type,
                                       'optim_wrapper.dtype')
        if self.device_type in ACCELERATORS:
            super().__init__(loss_scale=loss_scale, dtype=cast_dtype, **kwargs)
        else:
            # AmpOptimWrapper.__init__ asserts a GPU; only the scaler and
            # dtype it sets up are needed here.
            kwargs.pop('use_fsdp', None)
            OptimWrapper.__init__(self, **kwargs)
            self._scale_update_param = None
            self.cast_dtype = cast_dtype
        if self.cast_dtype != torch.float16:
            # A disabled GradScaler passes losses and steps through.
            self.loss_scaler = torch.amp.GradScaler(
                self.device_type, enabled=False)
        if self.device_type == 'cpu' and cast_dtype is None \
                and dtype in ('auto', None):
            print_log(
                'DeviceAmpOptimWrapper: this CPU has no native bfloat16 '
                '(AVX512-BF16 or AMX), where bf16 autocast is slower than '
                'fp32: training in fp32. Set optim_wrapper.dtype="bfloat16" '
                'to force bf16.',
                logger='current')
        print_log(
            f'Mixed precision on {self.device_type}: '
            f'{self.precision}', logger='current')

    @property
    def precision(self) -> str:
        """What the wrapper trains in, e.g. 'bfloat16 autocast'."""
        if self.cast_dtype is None:
            return 'float32 (no autocast)'
        name = str(self.cast_dtype).replace('torch.', '')
        scaling = ', dynamic loss scaling' if (
            self.loss_scaler.is_enabled()
            and self._scale_update_param is None) else (
                ', static loss scaling' if self.loss_scaler.is_enabled()
                else '')
        return f'{name} autocast{scaling}'

    def load_state_dict(self, state_dict: dict) -> None:
        # A disabled scaler saves {}; an enabled one refuses to load it
        # (resuming a CPU run on a GPU), so start that scaler afresh.
        if state_dict.get('loss_scaler', None) == {}:
            state_dict = dict(state_dict)
            state_dict.pop('loss_scaler')
        super().load_state_dict(state_dict)

    @contextmanager
    def optim_context(self, model: nn.Module):
        """Gradient-accumulation context plus autocast on this device."""
        with OptimWrapper.optim_context(self, model), autocast(
                device_type=self.device_type,
                dtype=self.cast_dtype or idle_autocast_dtype(self.device_type),
                enabled=self.cast_dtype is not None):
            yield
