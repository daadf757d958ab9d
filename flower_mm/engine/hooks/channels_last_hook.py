"""Run convolutions on channels-last (NHWC) tensors."""
from typing import Optional

import torch
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmpretrain.registry import HOOKS


@HOOKS.register_module()
class ChannelsLastHook(Hook):
    """Put the model's weights and its input batches in channels-last layout.

    oneDNN (CPU) and cuDNN with tensor cores (GPU) run convolutions fastest
    on NHWC tensors; in NCHW each convolution reorders its input and output.
    Before the run the model is converted with
    ``model.to(memory_format=torch.channels_last)``, and the batch the data
    preprocessor returns is converted too, in training, validation and
    test alike. Nothing else changes: the results equal NCHW's up to
    floating-point rounding.

    Checkpoints are saved in the usual contiguous layout, so they load into
    any model, with or without this hook. Under DDP the first iteration
    warns that gradient strides differ from DDP's buckets; DDP rebuilds its
    buckets after that iteration.

    Args:
        enabled (bool): False leaves the model in NCHW, as without the hook:
            ``--cfg-options default_hooks.channels_last.enabled=False``.
            Defaults to True.
    """

    priority = 'VERY_HIGH'  # before hooks that copy the model (EMA)

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._handle: Optional[torch.utils.hooks.RemovableHandle] = None

    def before_run(self, runner) -> None:
        if not self.enabled:
            return
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        if self._handle is None:
            self._handle = to_channels_last(model)
        print_log('ChannelsLastHook: model and inputs in channels-last '
                  'memory format', logger='current')

    def after_run(self, runner) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        state_dict = checkpoint.get('state_dict', {})
        for key, value in state_dict.items():
            if isinstance(value, torch.Tensor):
                state_dict[key] = value.contiguous()


def to_channels_last(model) -> torch.utils.hooks.RemovableHandle:
    """Convert the weights to channels-last, and from now on the batches
    the model's data preprocessor returns; remove the handle to stop."""
    model.to(memory_format=torch.channels_last)
    return model.data_preprocessor.register_forward_hook(
        _inputs_to_channels_last)


def _inputs_to_channels_last(module, args, output):
    """Forward hook of the data preprocessor: 4-D inputs to NHWC."""
    inputs = output.get('inputs') if isinstance(output, dict) else None
    if isinstance(inputs, torch.Tensor) and inputs.dim() == 4:
        output['inputs'] = inputs.contiguous(
            memory_format=torch.channels_last)
    return output


def channels_last_enabled(cfg) -> bool:
    """Whether a config's ``default_hooks`` put the model in channels-last."""
    hook = (cfg.get('default_hooks') or {}).get('channels_last')
    return bool(hook) and str(hook.get('type', '')).split('.')[-1] == \
        'ChannelsLastHook' and bool(hook.get('enabled', True))
