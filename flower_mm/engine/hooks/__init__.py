from .atomic_checkpoint_hook import (AtomicCheckpointHook,
                                     check_checkpoint_complete,
                                     find_last_complete_checkpoint)
from .broken_image_hook import BrokenImageHook
from .channels_last_hook import (ChannelsLastHook, channels_last_enabled,
                                 to_channels_last)
from .classification_report_hook import ClassificationReportHook
from .config_check_hook import ConfigCheckHook
from .malloc_tuning_hook import MallocTuningHook
from .pretrained_weights_check_hook import (PretrainedWeightsCheckHook,
                                            PretrainedWeightsError,
                                            check_pretrained_weights)
from .resumable_randomness_hook import (ResumableRandomnessHook,
                                        SampleSeededPipeline,
                                        seed_everything_for_epoch)
from .val_predictions_hook import ValPredictionsHook, read_val_predictions

__all__ = [
    'AtomicCheckpointHook', 'check_checkpoint_complete',
    'find_last_complete_checkpoint', 'BrokenImageHook', 'ChannelsLastHook',
    'channels_last_enabled', 'to_channels_last',
    'ClassificationReportHook', 'ConfigCheckHook', 'MallocTuningHook', 'PretrainedWeightsCheckHook',
    'PretrainedWeightsError', 'check_pretrained_weights',
    'ResumableRandomnessHook', 'SampleSeededPipeline',
    'seed_everything_for_epoch', 'ValPredictionsHook', 'read_val_predictions'
]
