from .cam import (CAM_METHODS, CamTargetError, can_explain,
                  candidate_layer_names, compute_cam, default_target_layers, overlay_heatmap,
                  resolve_target_category, resolve_target_layers)
from .inference import (IMG_EXTENSIONS, OUTPUT_FORMATS, BatchImageClassifier,
                        PhotoBatchPredictor, collect_image_inputs,
                        predictions_table, write_predictions)
from .onnx_inference import OnnxImageClassifier, resolve_onnx_model

__all__ = [
    'CAM_METHODS', 'CamTargetError', 'can_explain', 'candidate_layer_names',
    'compute_cam',
    'default_target_layers', 'overlay_heatmap', 'resolve_target_category',
    'resolve_target_layers', 'IMG_EXTENSIONS', 'OUTPUT_FORMATS',
    'BatchImageClassifier', 'OnnxImageClassifier', 'PhotoBatchPredictor',
    'collect_image_inputs', 'predictions_table', 'resolve_onnx_model',
    'write_predictions'
]
