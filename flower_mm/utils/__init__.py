from .lazy import lazy_exports

# Loaded on first use, so that the torch-free modules (user_errors, table,
# machine, lazy) import without torch.
_MODULES = {
    'cli': ['add_checkpoint_arguments', 'check_checkpoint_arguments'],
    'config_checks': ['ConfigError', 'check_cfg_options',
                      'check_checkpoint_exists', 'merge_cfg_options'],
    'precision': ['AMP_FLAG_HELP', 'amp_flag_dtype', 'cpu_has_native_bf16', 'float32_logits',
                  'idle_autocast_dtype', 'inference_precision',
                  'resolve_amp_dtype', 'resolve_inference_dtype'],
    'machine': ['auto_num_workers', 'cpu_model', 'describe_device',
                'resolve_num_workers', 'usable_cores'],
    'num_classes': ['load_trained_classifier',
                    'set_auto_num_classes', 'uses_auto_num_classes'],
    'table': ['format_table'],
    'user_errors': ['FlowerUserError', 'exit_on_user_error'],
}
__all__ = sorted(n for names in _MODULES.values() for n in names)
__getattr__ = lazy_exports(__name__, _MODULES)
