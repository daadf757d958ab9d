from .backends import (BACKEND_HELP, BACKENDS, SERVICE, BackendChoice,
                       BackendError, check_export_fits_config,
                       choose_backend, export_float_precision, is_export,
                       load_predictor, log_backend)
from .cam import (CAM_METHODS, CamTargetError, can_explain,
                  candidate_layer_names, compute_cam, default_target_layers,
                  overlay_heatmap, resolve_target_category,
                  resolve_target_layers)
from .exported_predictor import (ExportedModelPredictor, OnnxRuntimePredictor,
                                 OpenVINOPredictor)
from .inference import (IMG_EXTENSIONS, OUTPUT_FORMATS, collect_image_inputs,
                        predictions_table, write_predictions)
from .predictor import Predictor, failure_reason
from .pytorch_predictor import CompiledPyTorchPredictor, PyTorchPredictor

__all__ = [
    'BACKEND_HELP', 'BACKENDS', 'CAM_METHODS', 'IMG_EXTENSIONS',
    'OUTPUT_FORMATS', 'SERVICE', 'BackendChoice', 'BackendError',
    'CamTargetError', 'CompiledPyTorchPredictor', 'ExportedModelPredictor',
    'OnnxRuntimePredictor', 'OpenVINOPredictor', 'Predictor',
    'PyTorchPredictor', 'can_explain', 'candidate_layer_names',
    'check_export_fits_config', 'choose_backend', 'collect_image_inputs',
    'compute_cam', 'default_target_layers', 'export_float_precision',
    'failure_reason', 'is_export', 'load_predictor', 'log_backend',
    'overlay_heatmap',
    'predictions_table', 'resolve_target_category', 'resolve_target_layers',
    'write_predictions'
]
