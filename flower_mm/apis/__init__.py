from .inference import (IMG_EXTENSIONS, OUTPUT_FORMATS, BatchImageClassifier,
                        PhotoBatchPredictor, collect_image_inputs,
                        predictions_table, write_predictions)
from .onnx_inference import OnnxImageClassifier, resolve_onnx_model

__all__ = [
    'IMG_EXTENSIONS', 'OUTPUT_FORMATS', 'BatchImageClassifier',
    'OnnxImageClassifier', 'PhotoBatchPredictor', 'collect_image_inputs',
    'predictions_table', 'resolve_onnx_model', 'write_predictions'
]
