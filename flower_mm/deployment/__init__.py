from .export import (DEFAULT_TOLERANCE, EXPORT_FORMATS, INT8_FORMATS,
                     ExportableClassifier, ExportParityError,
                     export_classifier, load_check_batch,
                     preprocessing_description)
from .exported_classifier import ExportedClassifier
from .quantize import (DEFAULT_CALIB_IMAGES, DEFAULT_MIN_AGREEMENT,
                       DEFAULT_VERIFY_IMAGES, QuantizationAgreementError)
from .runtime import (RUNTIMES, ExportedModelError, OnnxRuntimeSession,
                      OpenVINOSession, RuntimeSession,
                      RuntimeUnavailableError, export_pipeline, is_int8,
                      open_session, openvino_unavailable_reason,
                      read_export_description)

__all__ = [
    'DEFAULT_CALIB_IMAGES', 'DEFAULT_MIN_AGREEMENT', 'DEFAULT_TOLERANCE',
    'DEFAULT_VERIFY_IMAGES', 'EXPORT_FORMATS', 'INT8_FORMATS', 'RUNTIMES',
    'ExportableClassifier', 'ExportParityError', 'ExportedClassifier',
    'ExportedModelError', 'OnnxRuntimeSession', 'OpenVINOSession',
    'QuantizationAgreementError', 'RuntimeSession', 'RuntimeUnavailableError',
    'export_classifier', 'export_pipeline', 'is_int8', 'load_check_batch',
    'open_session', 'openvino_unavailable_reason',
    'preprocessing_description', 'read_export_description'
]
