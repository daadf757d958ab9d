from .inference import (IMG_EXTENSIONS, OUTPUT_FORMATS, BatchImageClassifier,
                        collect_image_inputs, predictions_table,
                        write_predictions)

__all__ = [
    'IMG_EXTENSIONS', 'OUTPUT_FORMATS', 'BatchImageClassifier',
    'collect_image_inputs', 'predictions_table', 'write_predictions'
]
