from .export import (DEFAULT_TOLERANCE, EXPORT_FORMATS, DeployableClassifier,
                     ExportParityError, export_classifier, load_check_batch,
                     preprocessing_description)
from .quantize import (DEFAULT_CALIB_IMAGES, DEFAULT_MIN_AGREEMENT,
                       DEFAULT_VERIFY_IMAGES, QuantizationAgreementError,
                       ort_session)

__all__ = [
    'DEFAULT_CALIB_IMAGES', 'DEFAULT_MIN_AGREEMENT', 'DEFAULT_TOLERANCE',
    'DEFAULT_VERIFY_IMAGES', 'EXPORT_FORMATS', 'DeployableClassifier',
    'ExportParityError', 'QuantizationAgreementError', 'export_classifier',
    'load_check_batch', 'ort_session', 'preprocessing_description'
]
