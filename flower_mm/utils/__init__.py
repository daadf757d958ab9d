from .cli import add_checkpoint_arguments, check_checkpoint_arguments
from .config_checks import (ConfigError, check_cfg_options,
                            check_checkpoint_exists, merge_cfg_options)
from .precision import (cpu_has_native_bf16, float32_logits,
                        idle_autocast_dtype, inference_precision,
                        resolve_amp_dtype, resolve_inference_dtype)
from .table import format_table
from .user_errors import exit_on_user_error, user_error_types

__all__ = [
    'add_checkpoint_arguments', 'check_checkpoint_arguments',
    'ConfigError', 'check_cfg_options', 'check_checkpoint_exists',
    'cpu_has_native_bf16', 'exit_on_user_error', 'float32_logits',
    'format_table', 'idle_autocast_dtype', 'inference_precision',
    'merge_cfg_options',
    'resolve_amp_dtype', 'resolve_inference_dtype', 'user_error_types'
]
