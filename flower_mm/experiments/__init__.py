"""The report's experiments as config sweeps (``tools/sweep.py``)."""
from .registry import (EXPERIMENTS, Cell, Experiment, SweepError,
                       resolve_experiments, unique_cells)
from .results import RunResult, collect_result, read_run_log
from .sweep import Sweep, parse_cfg_options

__all__ = [
    'EXPERIMENTS', 'Cell', 'Experiment', 'SweepError', 'resolve_experiments',
    'unique_cells', 'RunResult', 'collect_result', 'read_run_log', 'Sweep',
    'parse_cfg_options'
]
