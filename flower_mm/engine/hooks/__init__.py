from .classification_report_hook import ClassificationReportHook
from .pretrained_weights_check_hook import (PretrainedWeightsCheckHook,
                                            PretrainedWeightsError,
                                            check_pretrained_weights)

__all__ = [
    'ClassificationReportHook', 'PretrainedWeightsCheckHook',
    'PretrainedWeightsError', 'check_pretrained_weights'
]
