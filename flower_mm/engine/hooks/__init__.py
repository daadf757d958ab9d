from .pretrained_weights_check_hook import (PretrainedWeightsCheckHook,
                                            PretrainedWeightsError,
                                            check_pretrained_weights)

__all__ = [
    'PretrainedWeightsCheckHook', 'PretrainedWeightsError',
    'check_pretrained_weights'
]
