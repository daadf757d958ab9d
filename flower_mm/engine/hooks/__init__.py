from .channels_last_hook import ChannelsLastHook
from .malloc_tuning_hook import MallocTuningHook
from .pretrained_weights_check_hook import (PretrainedWeightsCheckHook,
                                            PretrainedWeightsError,
                                            check_pretrained_weights)

__all__ = [
    'ChannelsLastHook', 'MallocTuningHook', 'PretrainedWeightsCheckHook',
    'PretrainedWeightsError', 'check_pretrained_weights'
]
