from .lazy import lazy_exports

# Loaded on first use, so that the torch-free modules below (user_errors,
# table, lazy) can be imported without torch.
_EXPORTS = {
    'ConfigError': 'config_checks',
    'check_cfg_options': 'config_checks',
    'check_checkpoint_exists': 'config_checks',
    'merge_cfg_options': 'config_checks',
    'cpu_has_native_bf16': 'precision',
    'float32_logits': 'precision',
    'idle_autocast_dtype': 'precision',
    'inference_precision': 'precision',
    'resolve_amp_dtype': 'precision',
    'resolve_inference_dtype': 'precision',
    'format_table': 'table',
    'FlowerUserError': 'user_errors',
    'exit_on_user_error': 'user_errors',
    'user_error_types': 'user_errors',
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
