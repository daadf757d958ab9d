from .config_checks import (ConfigError, check_cfg_options,
                            check_checkpoint_exists)
from .table import format_table
from .user_errors import exit_on_user_error, user_error_types

__all__ = [
    'ConfigError', 'check_cfg_options', 'check_checkpoint_exists',
    'exit_on_user_error', 'format_table', 'user_error_types'
]
