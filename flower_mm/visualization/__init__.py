from .curves import (DEFAULT_KEYS, ScalarsNotFoundError, find_scalar_files,
                     load_runs, load_scalar_records, plot_training_curves,
                     run_curves)
from .explain import overlay_heatmap, plot_cam, plot_misclassified

__all__ = [
    'DEFAULT_KEYS', 'ScalarsNotFoundError', 'find_scalar_files', 'load_runs',
    'load_scalar_records', 'plot_training_curves', 'run_curves',
    'overlay_heatmap', 'plot_cam', 'plot_misclassified'
]
