"""The runtime backends: an export of ``tools/export.py`` on onnxruntime or
OpenVINO, preprocessed as the JSON next to it says (the config's test
pipeline), the model being :class:`~flower_mm.deployment.ExportedClassifier`.
"""
from typing import Optional

from flower_mm.deployment import (ExportedClassifier, ExportedModelError,
                                  export_pipeline)

from .predictor import Predictor


class ExportedModelPredictor(Predictor):
    """Top-k predictions from an export, on the CPU.

    Args:
        model_file (str): ``.onnx`` or ``.xml`` written by
            ``tools/export.py``, with its ``.json``.
        device (str, optional): only 'cpu'.
        float_precision (str, optional): OpenVINO's float layers:
            'float32' or 'bfloat16' (None: OpenVINO's default here).
        num_threads (int, optional): the runtime's threads; default: the
            cores this process may use.

    Attributes:
        classes, device, backend, precision, model_file, meta (the
        export's JSON).
    """

    def __init__(self,
                 model_file: str,
                 device: Optional[str] = None,
                 float_precision: Optional[str] = None,
                 num_threads: Optional[int] = None):
        if device not in (None, 'cpu'):
            raise ExportedModelError(
                f'The {self.backend} backend runs on the CPU; got device '
                f'"{device}". Use the PyTorch checkpoint for a GPU.')
        self.device = 'cpu'
        self.model_file = model_file
        self.model = ExportedClassifier(model_file, self.backend,
                                        float_precision, num_threads)
        self.meta = self.model.meta
        self.classes = self.model.classes
        self.pipeline = export_pipeline(self.meta)

    @property
    def precision(self) -> str:
        """E.g. 'int8' or 'int8, bfloat16 elsewhere'."""
        return self.model.session.precision

    def predict_batch(self, batch: dict) -> list:
        return self.model.test_step(batch)


class OnnxRuntimePredictor(ExportedModelPredictor):
    """An ``.onnx`` export (float32 or int8) on onnxruntime (backend
    ``onnxruntime``)."""
    backend = 'onnxruntime'


class OpenVINOPredictor(ExportedModelPredictor):
    """An OpenVINO IR (``.xml``) or ``.onnx`` export on OpenVINO (backend
    ``openvino``); float layers in bf16 where the CPU computes it natively
    and the config's ``test_cfg.fp16`` allows it."""
    backend = 'openvino'
