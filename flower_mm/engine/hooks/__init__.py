from .channels_last_hook import ChannelsLastHook
from .pretrained_weights_check_hook import (PretrainedWeightsCheckHook,
                                            PretrainedWeightsError,
                                            check_pretrained_weights)

__all__ = [
    'ChannelsLastHook', 'PretrainedWeightsCheckHook', 'PretrainedWeightsError',
    'check_pretrained_weights'
]
