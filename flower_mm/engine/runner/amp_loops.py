"""Validation and test loops that pick their autocast dtype per device."""
from typing import Dict, List, Sequence, Union

import torch
from mmengine.device import get_device
from mmengine.logging import print_log
from mmengine.runner import TestLoop, ValLoop
from mmengine.runner.amp import autocast
from mmengine.runner.loops import _update_losses
from mmengine.structures import BaseDataElement
from mmpretrain.registry import LOOPS
from torch.utils.data import DataLoader

from flower_mm.utils.precision import (float32_logits, idle_autocast_dtype,
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
    """

    def _resolve_fp16(self, fp16: Union[bool, str], key: str) -> None:
        self.device_type = get_device()
        self.cast_dtype = resolve_inference_dtype(fp16, self.device_type, key)
        self.fp16 = self.cast_dtype is not None
        print_log(
            f'{type(self).__name__} on {self.device_type}: '
            f'{str(self.cast_dtype or torch.float32)[6:]} inference',
            logger='current')

    def _predict(self, step, data_batch):
        with autocast(
                device_type=self.device_type,
                dtype=self.cast_dtype or idle_autocast_dtype(self.device_type),
                enabled=self.fp16), float32_logits(self.runner.model):
            outputs = step(data_batch)
        if self.fp16:
            for sample in outputs:
                if isinstance(sample, BaseDataElement):
                    _to_float32(sample)
        return outputs


def _to_float32(sample: BaseDataElement) -> None:
    for key, value in list(sample.items()):
        if isinstance(value, torch.Tensor) and value.is_floating_point() \
                and value.dtype != torch.float32:
            sample.set_field(value.float(), key)
        elif isinstance(value, BaseDataElement):
            _to_float32(value)


@LOOPS.register_module()
class AmpValLoop(_AmpInferenceMixin, ValLoop):
    """:class:`ValLoop` with ``fp16`` True, False or 'auto' (the default).

    Args:
        runner, dataloader, evaluator: As for :class:`ValLoop`.
        fp16 (bool | str): See :class:`_AmpInferenceMixin`.
    """

    def __init__(self,
                 runner,
                 dataloader: Union[DataLoader, Dict],
                 evaluator: Union[Dict, List],
                 fp16: Union[bool, str] = 'auto') -> None:
        super().__init__(runner, dataloader, evaluator)
        self._resolve_fp16(fp16, 'val_cfg.fp16')

    @torch.no_grad()
    def run_iter(self, idx, data_batch: Sequence[dict]):
        self.runner.call_hook(
            'before_val_iter', batch_idx=idx, data_batch=data_batch)
        outputs = self._predict(self.runner.model.val_step, data_batch)
        outputs, self.val_loss = _update_losses(outputs, self.val_loss)
        self.evaluator.process(data_samples=outputs, data_batch=data_batch)
        self.runner.call_hook(
            'after_val_iter',
            batch_idx=idx,
            data_batch=data_batch,
            outputs=outputs)


@LOOPS.register_module()
class AmpTestLoop(_AmpInferenceMixin, TestLoop):
    """:class:`TestLoop` with ``fp16`` True, False or 'auto' (the default).

    Args:
        runner, dataloader, evaluator: As for :class:`TestLoop`.
        fp16 (bool | str): See :class:`_AmpInferenceMixin`.
    """

    def __init__(self,
                 runner,
                 dataloader: Union[DataLoader, Dict],
                 evaluator: Union[Dict, List],
                 fp16: Union[bool, str] = 'auto') -> None:
        super().__init__(runner, dataloader, evaluator)
        self._resolve_fp16(fp16, 'test_cfg.fp16')

    @torch.no_grad()
    def run_iter(self, idx, data_batch: Sequence[dict]) -> None:
        self.runner.call_hook(
            'before_test_iter', batch_idx=idx, data_batch=data_batch)
        outputs = self._predict(self.runner.model.test_step, data_batch)
        outputs, self.test_loss = _update_losses(outputs, self.test_loss)
        self.evaluator.process(data_samples=outputs, data_batch=data_batch)
        self.runner.call_hook(
            'after_test_iter',
            batch_idx=idx,
            data_batch=data_batch,
            outputs=outputs)
