from .export import (DEFAULT_TOLERANCE, EXPORT_FORMATS, DeployableClassifier,
                     ExportParityError, export_classifier, load_check_batch,
                     preprocessing_description)
from .onnx_model import (OnnxClassifier, OnnxModelError, onnx_precision,
                         read_export_description)
from .quantize import (DEFAULT_CALIB_IMAGES, DEFAULT_MIN_AGREEMENT,
                       DEFAULT_VERIFY_IMAGES, QuantizationAgreementError,
                       ort_session)

__all__ = [
    'DEFAULT_CALIB_IMAGES', 'DEFAULT_MIN_AGREEMENT', 'DEFAULT_TOLERANCE',
    'DEFAULT_VERIFY_IMAGES', 'EXPORT_FORMATS', 'DeployableClassifier',
    'ExportParityError', 'OnnxClassifier', 'OnnxModelError',
    'QuantizationAgreementError', 'export_classifier', 'load_check_batch',
    'onnx_precision', 'ort_session', 'preprocessing_description',
    'read_export_description'
]
