from .config_check_hook import (ConfigCheckHook, check_batches,
                                check_num_classes)
from .pretrained_weights_check_hook import (PretrainedWeightsCheckHook,
                                            PretrainedWeightsError,
                                            check_pretrained_weights)

__all__ = [
    'ConfigCheckHook', 'check_batches', 'check_num_classes',
    'PretrainedWeightsCheckHook', 'PretrainedWeightsError',
    'check_pretrained_weights'
]
