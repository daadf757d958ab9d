from .export import (DEFAULT_TOLERANCE, EXPORT_FORMATS, DeployableClassifier,
                     ExportParityError, export_classifier, load_check_batch,
                     preprocessing_description)

__all__ = [
    'DEFAULT_TOLERANCE', 'EXPORT_FORMATS', 'DeployableClassifier',
    'ExportParityError', 'export_classifier', 'load_check_batch',
    'preprocessing_description'
]
