"""A sweep: every config of some experiments with N seeds, each run an
ordinary ``tools/train.py`` that resumes itself, handed to a launcher."""
import argparse
import json
import os
import os.path as osp
import sys
import time
from typing import List, NamedTuple, Optional, Sequence

from filelock import FileLock, Timeout
from mmengine.config import Config, DictAction
from mmengine.logging import MMLogger

from ..engine.hooks.atomic_checkpoint_hook import \
    find_last_complete_checkpoint
from ..fileio import atomic_write_bytes
from ..utils.config_checks import merge_cfg_options
from .registry import (REPO_ROOT, Cell, Experiment, SweepError,
                       resolve_experiments, unique_cells)
from .results import (RunResult, collect_result, compare_cells, plot_results,
                      summarize_cells, write_csv, write_differences_csv,
                      write_markdown)

STATE_FILE = 'sweep_run.json'
TRAIN_LOG = 'train.log'
TRAIN_TOOL = osp.join(REPO_ROOT, 'tools', 'train.py')


def parse_cfg_options(options: Sequence[str]) -> dict:
    """``KEY=VALUE`` strings as ``tools/train.py --cfg-options`` reads them."""
    for option in options:
        if '=' not in option:
            raise SweepError(f'--cfg-options "{option}" is not KEY=VALUE.')
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args(['--cfg-options', *options]).cfg_options


class Run(NamedTuple):
    """A config and a seed to train into ``work_dir``."""
    cell: Cell
    seed: int
    work_dir: str
    batch_size: int
    max_epochs: int

    @property
    def name(self) -> str:
        return f'{self.cell.name}/seed{self.seed}'

    @property
    def state_path(self) -> str:
        return osp.join(self.work_dir, STATE_FILE)

    @property
    def log_path(self) -> str:
        """Every session's output, appended (the launchers write it)."""
        return osp.join(self.work_dir, TRAIN_LOG)


class Sweep:
    """Train each config of ``experiments`` with ``seeds`` seeds, run
    ``<config>/seed<S>`` in ``work_root/<config>/seed<S>``.

    The seeds are ``randomness.seed`` of the config (with the options) and
    the next ``seeds - 1`` integers. A run's state lives in its work dir
    (``sweep_run.json``): a run marked done is skipped, any other resumes
    from its latest complete checkpoint (``tools/train.py --resume``). The
    launcher decides where runs execute (this machine, one or several at
    once, or Slurm); the results of all runs so far are written to
    ``work_root/results.{md,csv,png}`` and ``results_differences.csv``.
    """

    def __init__(self,
                 targets: Sequence[str],
                 work_root: str = 'work_dirs/sweep',
                 cfg_options: Sequence[str] = (),
                 amp: bool = False,
                 seeds: int = 1,
                 launcher=None):
        if seeds < 1:
            raise SweepError(f'--seeds {seeds}: train at least one seed per '
                             'config (--seeds 1 is one run per config).')
        from .local_launcher import LocalLauncher
        self.launcher = launcher or LocalLauncher()
        self.experiments: List[Experiment] = resolve_experiments(targets)
        self.work_root = osp.abspath(work_root)
        self.cfg_options = list(cfg_options)
        self.train_flags = ['--amp'] if amp else []
        self.seeds = seeds
        self.older_layout: List[str] = []
        self.runs: List[Run] = [
            run for cell in unique_cells(self.experiments)
            for run in self._plan(cell)
        ]
        os.makedirs(self.work_root, exist_ok=True)
        self.logger = MMLogger.get_instance(
            f'flower_sweep_{time.time_ns()}',
            logger_name='flower_sweep',
            log_file=osp.join(self.work_root, 'sweep.log'),
            file_mode='a')  # one history across resumed sweeps
        for message in self.older_layout:
            self.logger.info(message)

    def _plan(self, cell: Cell) -> List[Run]:
        """Check, before any training, that the config loads with the
        options and that no work dir holds a run with other options."""
        if not osp.isfile(cell.config_path):
            raise SweepError(f'Config file "{cell.config_path}" does not '
                             'exist.')
        try:
            cfg = Config.fromfile(cell.config_path)
            # Typos fail here, as in tools/train.py, before any run starts.
            if self.cfg_options:
                merge_cfg_options(cfg, parse_cfg_options(self.cfg_options))
            batch_size = int(cfg.train_dataloader.batch_size)
            max_epochs = int(cfg.train_cfg.max_epochs)
            base_seed = cfg.get('randomness', {}).get('seed')
        except SweepError:
            raise
        except Exception as err:
            raise SweepError(f'Config "{cell.config_path}" with --cfg-options '
                             f'{self.cfg_options} cannot be read: '
                             f'{type(err).__name__}: {err}') from err
        if base_seed is None:
            raise SweepError(
                f'{cell.config_path} has no fixed randomness.seed, so its '
                'seeds would not be reproducible: add --cfg-options '
                'randomness.seed=0.')
        config_dir = osp.join(self.work_root, cell.name)
        older = self._read_state_file(osp.join(config_dir, STATE_FILE))
        runs = []
        for seed in range(int(base_seed), int(base_seed) + self.seeds):
            work_dir = osp.join(config_dir, f'seed{seed}')
            if seed == base_seed and older is not None and \
                    not osp.exists(work_dir):
                # A sweep from before --seeds trained the config's own seed
                # into <work root>/<config>: that run is this one.
                work_dir = config_dir
                self.older_layout.append(
                    f'{cell.name}/seed{seed}: the run an earlier sweep made '
                    f'in {config_dir} (status: {older.get("status")}); kept '
                    'there, other seeds go to seed<N>/ beside it.')
            run = Run(cell, seed, work_dir, batch_size, max_epochs)
            self._check_options(run)
            runs.append(run)
        return runs

    def _check_options(self, run: Run) -> None:
        state = self.read_state(run)
        if state and (state.get('cfg_options') != self.cfg_options
                      or state.get('train_flags') != self.train_flags):
            raise SweepError(
                f'{run.work_dir} holds a run of {run.cell.name} with '
                f'--cfg-options {state.get("cfg_options")} '
                f'{" ".join(state.get("train_flags", []))}, this sweep asks '
                f'for --cfg-options {self.cfg_options} '
                f'{" ".join(self.train_flags)}. Pass the same options, '
                'another --work-root, or delete that work dir to retrain.')

    @staticmethod
    def _read_state_file(path: str) -> Optional[dict]:
        if not osp.isfile(path):
            return None
        try:
            with open(path) as f:
                return json.load(f)
        except (OSError, ValueError) as err:
            raise SweepError(
                f'Cannot read the sweep state "{path}" ({err}): delete it '
                'to resume that run from its checkpoints.')

    def read_state(self, run: Run) -> Optional[dict]:
        return self._read_state_file(run.state_path)

    def write_state(self, run: Run, status: str, **extra) -> None:
        state = self.read_state(run) or {}
        state.update(
            config=run.cell.config_path,
            cfg_options=self.cfg_options,
            train_flags=self.train_flags,
            seed=run.seed,
            status=status,
            **extra)
        os.makedirs(run.work_dir, exist_ok=True)
        # Never a half-written state.
        atomic_write_bytes(json.dumps(state, indent=2).encode(),
                           run.state_path)

    def status(self, run: Run) -> str:
        state = self.read_state(run)
        return 'not run' if state is None else state['status']

    def train_command(self, run: Run) -> List[str]:
        """The run's ``tools/train.py`` command, the same for every launcher
        and every session: ``--resume`` alone continues from the latest
        complete checkpoint in the work dir, if there is one."""
        return [
            sys.executable, TRAIN_TOOL, run.cell.config_path, '--work-dir',
            run.work_dir, '--resume', *self.train_flags, '--cfg-options',
            *self.cfg_options, f'randomness.seed={run.seed}'
        ]

    def start_point(self, run: Run) -> str:
        """Where the next session starts, for the log."""
        checkpoint = find_last_complete_checkpoint(run.work_dir)
        if checkpoint:
            return f'resuming from {osp.basename(checkpoint)}'
        return 'training from scratch'

    def results(self) -> List[RunResult]:
        results = []
        runs = {(run.cell.name, run.seed): run for run in self.runs}
        for experiment in self.experiments:
            for cell in experiment.cells:
                for seed in sorted(s for name, s in runs if name == cell.name):
                    run = runs[cell.name, seed]
                    state = self.read_state(run) or {}
                    results.append(
                        collect_result(experiment, cell, seed, run.work_dir,
                                       state.get('status', 'not run'),
                                       run.batch_size, run.max_epochs,
                                       state.get('device', '')))
        return results

    def write_results(self) -> None:
        cells = summarize_cells(self.experiments, self.results())
        differences = compare_cells(self.experiments, cells)
        base = osp.join(self.work_root, 'results')
        write_markdown(self.experiments, cells, differences, base + '.md')
        write_csv(cells, base + '.csv')
        write_differences_csv(differences, base + '_differences.csv')
        plot_results(self.experiments, cells, differences, base + '.png')

    def summary(self, run: Run) -> str:
        result = next(r for r in self.results()
                      if (r.config, r.seed) == (run.cell.name, run.seed))
        if result.best_top1 is None:
            return f'{run.name}: {result.status}, no val top-1 logged'
        return (f'{run.name}: {result.status}, epoch '
                f'{result.epochs_done}/{run.max_epochs}, best val top-1 '
                f'{result.best_top1:.2f} (epoch {result.best_epoch}), '
                f'final {result.final_top1:.2f}')

    def _lock(self) -> FileLock:
        """Hold ``work_root/sweep.lock``: two sweeps training into one work
        dir would wreck it (or submit its run twice). ``filelock``, as data
        preparation locks, so a sweep also runs on macOS and Windows; the
        holder's pid is in ``sweep.lock.owner`` for the other's message."""
        lock = FileLock(osp.join(self.work_root, 'sweep.lock'), timeout=0)
        owner_file = osp.join(self.work_root, 'sweep.lock.owner')
        try:
            lock.acquire()
        except Timeout:
            try:
                with open(owner_file) as f:
                    owner = f.read().strip()
            except OSError:
                owner = ''
            raise SweepError(
                f'Another tools/sweep.py ({owner or "another process"}) is '
                f'working in {self.work_root}: wait for it to end, or use '
                'another --work-root.') from None
        with open(owner_file, 'w') as f:
            f.write(f'pid {os.getpid()}')
        return lock

    def run(self, collect_only: bool = False) -> List[str]:
        """Launch what is not done yet; the names of the runs that failed.
        ``collect_only``: write the results of the runs so far."""
        if collect_only:
            for i, run in enumerate(self.runs, 1):
                self.logger.info(f'[{i}/{len(self.runs)}] {self.summary(run)}')
            self.write_results()
            self.log_results_written()
            return []
        lock = self._lock()
        try:
            self.launcher.check(self)
            configs = len(self.runs) // self.seeds
            self.logger.info(
                f'Sweep of {len(self.runs)} runs ({configs} configs x '
                f'{self.seeds} seed{"s" * (self.seeds > 1)}) into '
                f'{self.work_root}, '
                f'{self.launcher.describe()}: '
                f'{", ".join(run.name for run in self.runs)}')
            failed = self.launcher.launch(self)
            self.write_results()
            self.log_results_written()
            return failed
        finally:
            lock.release()

    def log_results_written(self) -> None:
        self.logger.info('Results: ' + ', '.join(
            osp.join(self.work_root, name)
            for name in ('results.md', 'results.csv',
                         'results_differences.csv', 'results.png')))
