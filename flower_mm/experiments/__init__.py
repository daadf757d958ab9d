"""The report's experiments as config sweeps (``tools/sweep.py``)."""
from .local_launcher import LocalLauncher
from .registry import (EXPERIMENTS, Cell, Comparison, Experiment, SweepError,
                       resolve_experiments, unique_cells)
from .results import (CellResult, DifferenceResult, RunResult, collect_result,
                      read_run_log)
from .slurm_launcher import SlurmLauncher
from .sweep import Sweep, parse_cfg_options

__all__ = [
    'EXPERIMENTS', 'Cell', 'Comparison', 'Experiment', 'SweepError',
    'resolve_experiments', 'unique_cells', 'CellResult', 'DifferenceResult',
    'RunResult', 'collect_result', 'read_run_log', 'LocalLauncher',
    'SlurmLauncher', 'Sweep', 'parse_cfg_options'
]
