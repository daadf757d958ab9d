from .curves import (DEFAULT_KEYS, ScalarsNotFoundError, find_scalar_files,
                     load_runs, load_scalar_records, plot_training_curves,
                     run_curves)

__all__ = [
    'DEFAULT_KEYS', 'ScalarsNotFoundError', 'find_scalar_files', 'load_runs',
    'load_scalar_records', 'plot_training_curves', 'run_curves'
]
