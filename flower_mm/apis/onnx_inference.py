"""Classify image files with an exported ONNX model (float32 or int8).

The same interface and results as :class:`BatchImageClassifier`, so the
tools and the service switch backends with one constructor: decoding and
batching are shared, the preprocessing is the one ``tools/export.py``
recorded in the JSON next to the model (the config's test pipeline), and
the model is :class:`~flower_mm.deployment.OnnxClassifier` on onnxruntime.
"""
import glob
import os.path as osp
from typing import Optional

from mmengine.dataset import Compose
from mmengine.registry import DefaultScope

from flower_mm.deployment import OnnxClassifier, OnnxModelError

from .inference import PhotoBatchPredictor


def resolve_onnx_model(path: str) -> str:
    """``path`` itself, or the model in an export folder: the int8 one
    where there is one, else the only ``.onnx`` file."""
    if not osp.isdir(path):
        return path
    models = sorted(glob.glob(osp.join(path, '*.onnx')))
    int8 = [m for m in models if m.endswith('.int8.onnx')]
    chosen = int8 if int8 else models
    if len(chosen) != 1:
        found = ', '.join(osp.basename(m) for m in models) or 'none'
        raise OnnxModelError(
            f'Folder "{path}" must hold one .onnx model (or one .int8.onnx) '
            f'from tools/export.py; found {found}: pass the file instead.')
    return chosen[0]


class OnnxImageClassifier(PhotoBatchPredictor):
    """Top-k predictions for image files from an ONNX export, on the CPU.

    Args:
        model (str): ``*.onnx`` written by ``tools/export.py`` (``--format
            onnx`` or ``onnx-int8``), with its ``.onnx.json``; or the export
            folder (see :func:`resolve_onnx_model`).
        device (str, optional): only 'cpu' (onnxruntime's CPU provider).
        num_threads (int, optional): onnxruntime intra-op threads; default:
            the cores this process may use.

    Attributes:
        classes, device, precision, onnx_file, meta (the export's JSON).
    """

    def __init__(self,
                 model: str,
                 device: Optional[str] = None,
                 num_threads: Optional[int] = None):
        if device not in (None, 'cpu'):
            raise OnnxModelError(
                f'The ONNX backend runs on the CPU; got device "{device}". '
                'Use the PyTorch checkpoint for a GPU.')
        self.device = 'cpu'
        self.onnx_file = resolve_onnx_model(model)
        self.model = OnnxClassifier(self.onnx_file, num_threads)
        self.meta = self.model.meta
        self.classes = self.model.classes
        from mmpretrain.registry import TRANSFORMS
        steps = [{k: v for k, v in step.items() if k != 'details'}
                 for step in self.meta['preprocess']['steps']]
        with DefaultScope.overwrite_default_scope('mmpretrain'):
            self.pipeline = Compose([
                TRANSFORMS.build(step)
                for step in steps + [dict(type='PackInputs')]
            ])

    @property
    def precision(self) -> str:
        """E.g. 'ONNX int8 (onnxruntime)'."""
        return self.model.precision

    def predict_batch(self, batch: dict) -> list:
        return self.model.test_step(batch)
