"""The PyTorch backends: a checkpoint in eager mode or compiled."""
from typing import Optional

import torch
from mmengine.config import Config

from flower_mm.engine.hooks import channels_last_enabled, to_channels_last
from flower_mm.engine.runner import compile_forward, loop_fp16
from flower_mm.utils import (inference_precision, load_trained_classifier,
                             resolve_inference_dtype)

from .predictor import Predictor


class PyTorchPredictor(Predictor):
    """A checkpoint in PyTorch eager mode (backend ``pytorch``).

    Built on MMPretrain's ``ImageClassificationInferencer`` (model,
    checkpoint, classes, the config's test pipeline). Runs at the precision
    and memory format ``tools/test.py`` uses with the same config:
    ``test_cfg.fp16`` (see :class:`AmpTestLoop`) and
    ``default_hooks.channels_last`` (see :class:`ChannelsLastHook`).

    Args:
        config (str | Config): Config (file) the checkpoint was trained
            with.
        checkpoint (str): Checkpoint written by ``tools/train.py``.
        device (str, optional): 'cuda', 'cpu'...; the GPU when there is one
            by default (MMPretrain's inferencer keeps the CPU otherwise).
    """
    backend = 'pytorch'

    def __init__(self,
                 config,
                 checkpoint: str,
                 device: Optional[str] = None):
        from mmpretrain.apis import ImageClassificationInferencer
        cfg = Config.fromfile(config) if isinstance(config, str) else config
        self.model_file = checkpoint
        self.device = device or ('cuda'
                                 if torch.cuda.is_available() else 'cpu')
        self.device_type = torch.device(self.device).type
        self.cast_dtype = resolve_inference_dtype(
            loop_fp16(cfg.get('test_cfg')), self.device_type,
            'test_cfg.fp16')
        # The checkpoint read once, for the weights and the class names.
        model, self.classes = load_trained_classifier(cfg, checkpoint,
                                                      self.device)
        self.inferencer = ImageClassificationInferencer(
            model=model, pretrained=False, device=self.device,
            classes=self.classes)
        self.model = self.inferencer.model
        self.pipeline = self.inferencer.pipeline
        self.channels_last = channels_last_enabled(cfg)
        if self.channels_last:
            to_channels_last(self.model)

    @property
    def precision(self) -> str:
        """E.g. 'bfloat16 autocast, channels-last' or 'float32'."""
        text = (f'{str(self.cast_dtype)[6:]} autocast'
                if self.cast_dtype else 'float32')
        return text + (', channels-last' if self.channels_last else '')

    def predict_batch(self, batch: dict) -> list:
        with inference_precision(self.model, self.device_type,
                                 self.cast_dtype):
            return self.inferencer.forward(batch)


class CompiledPyTorchPredictor(PyTorchPredictor):
    """A checkpoint with its forward compiled by ``torch.compile``
    (Inductor, weights frozen into the graph; backend
    ``pytorch-compiled``): the same model, precision and answers as
    :class:`PyTorchPredictor`, 1.8x as fast end to end on a 2-core CPU
    with native bf16 (docs/benchmarks.md#backends). The first batch takes
    the compile time (about 10 s there; less with Inductor's on-disk
    cache); later batch sizes reuse the graph. Explanations
    (:func:`compute_cam`) run the eager forward.
    """
    backend = 'pytorch-compiled'

    def __init__(self, config, checkpoint: str,
                 device: Optional[str] = None):
        super().__init__(config, checkpoint, device)
        compile_forward(self.model, inference=True)
