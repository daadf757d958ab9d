"""Validation and test loops that pick their autocast dtype per device."""
from typing import Dict, List, Sequence, Union

import torch
from mmengine.device import get_device
from mmengine.logging import print_log
from mmengine.runner import TestLoop, ValLoop
from mmengine.runner.loops import _update_losses
from mmengine.structures import BaseDataElement
from mmpretrain.registry import LOOPS
from torch.utils.data import DataLoader

from flower_mm.utils.precision import (inference_precision,
                                       resolve_inference_dtype)


class _AmpInferenceMixin:
    """Autocast per device and fp32 outputs for MMEngine's Val/TestLoop.

    MMEngine's loops take ``fp16=True`` to autocast, which on a CPU means
    bf16 even where the CPU emulates it (slower than fp32), and they hand
    evaluators and ``--out`` dumps scores in half precision (bf16 scores
    keep 3 digits and numpy cannot read them). These loops accept
    ``fp16='auto'`` (the dtype rules of :func:`resolve_amp_dtype`: fp16 on a
    GPU, bf16 on a CPU with native bf16, fp32 elsewhere), ``True`` (fp16 on
    a GPU, bf16 on a CPU), or ``False``, and return predictions in fp32,
    the softmax taken of fp32 logits (:func:`float32_logits`).

    ``mode`` ('val' or 'test') names the model step, hooks, loss attribute
    and config key, as in MMEngine's pair of loops.
    """
    mode: str

    def __init__(self,
                 runner,
                 dataloader: Union[DataLoader, Dict],
                 evaluator: Union[Dict, List],
                 fp16: Union[bool, str] = 'auto') -> None:
        super().__init__(runner, dataloader, evaluator)
        self.device_type = get_device()
        self.cast_dtype = resolve_inference_dtype(fp16, self.device_type,
                                                  f'{self.mode}_cfg.fp16')
        self.fp16 = self.cast_dtype is not None
        print_log(
            f'{type(self).__name__} on {self.device_type}: '
            f'{str(self.cast_dtype or torch.float32)[6:]} inference',
            logger='current')

    @torch.no_grad()
    def run_iter(self, idx, data_batch: Sequence[dict]) -> None:
        mode, model = self.mode, self.runner.model
        self.runner.call_hook(
            f'before_{mode}_iter', batch_idx=idx, data_batch=data_batch)
        with inference_precision(model, self.device_type, self.cast_dtype):
            outputs = getattr(model, f'{mode}_step')(data_batch)
        if self.fp16:
            for sample in outputs:
                if isinstance(sample, BaseDataElement):
                    _to_float32(sample)
        outputs, losses = _update_losses(outputs,
                                         getattr(self, f'{mode}_loss'))
        setattr(self, f'{mode}_loss', losses)
        self.evaluator.process(data_samples=outputs, data_batch=data_batch)
        self.runner.call_hook(
            f'after_{mode}_iter',
            batch_idx=idx,
            data_batch=data_batch,
            outputs=outputs)


def _to_float32(sample: BaseDataElement) -> None:
    for key, value in list(sample.items()):
        if isinstance(value, torch.Tensor) and value.is_floating_point() \
                and value.dtype != torch.float32:
            sample.set_field(value.float(), key)
        elif isinstance(value, BaseDataElement):
            _to_float32(value)


def loop_fp16(loop_cfg) -> Union[bool, str]:
    """``fp16`` of a ``val_cfg``/``test_cfg`` as its loop reads it.

    ``AmpValLoop``/``AmpTestLoop`` default to 'auto'; MMEngine's loops run
    fp32 unless told.
    """
    loop_cfg = loop_cfg or {}
    default = 'auto' if str(loop_cfg.get('type', '')).split('.')[-1] in (
        'AmpValLoop', 'AmpTestLoop') else False
    return loop_cfg.get('fp16', default)


@LOOPS.register_module()
class AmpValLoop(_AmpInferenceMixin, ValLoop):
    """:class:`ValLoop` with ``fp16`` True, False or 'auto' (the default).

    Args:
        runner, dataloader, evaluator: As for :class:`ValLoop`.
        fp16 (bool | str): See :class:`_AmpInferenceMixin`.
    """
    mode = 'val'


@LOOPS.register_module()
class AmpTestLoop(_AmpInferenceMixin, TestLoop):
    """:class:`TestLoop` with ``fp16`` True, False or 'auto' (the default).

    Args:
        runner, dataloader, evaluator: As for :class:`TestLoop`.
        fp16 (bool | str): See :class:`_AmpInferenceMixin`.
    """
    mode = 'test'
