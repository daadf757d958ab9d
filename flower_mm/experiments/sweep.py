"""Run configs one after another with ``tools/train.py``, resumably."""
import argparse
import json
import os
import os.path as osp
import signal
import subprocess
import sys
import time
from typing import List, NamedTuple, Optional, Sequence

from mmengine.config import Config, DictAction
from mmengine.logging import MMLogger

from ..engine.hooks.atomic_checkpoint_hook import \
    find_last_complete_checkpoint
from ..fileio import atomic_write_bytes
from ..utils.machine import describe_device
from .registry import (REPO_ROOT, Cell, Experiment, SweepError,
                       resolve_experiments, unique_cells)
from .results import (RunResult, collect_result, plot_results, write_csv,
                      write_markdown)

STATE_FILE = 'sweep_run.json'
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
    """A config to train into ``work_dir`` with the sweep's options."""
    cell: Cell
    work_dir: str
    batch_size: int
    max_epochs: int

    @property
    def state_path(self) -> str:
        return osp.join(self.work_dir, STATE_FILE)


class Sweep:
    """Train each config of ``experiments`` into ``work_root/<config name>``.

    A run's state lives in its work dir (``sweep_run.json``): a run marked
    done is skipped, one that stopped early is resumed from its latest
    checkpoint with ``tools/train.py --resume``. After every run the results
    of all runs so far are written to ``work_root/results.{md,csv,png}``.
    """

    def __init__(self,
                 targets: Sequence[str],
                 work_root: str = 'work_dirs/sweep',
                 cfg_options: Sequence[str] = (),
                 amp: bool = False):
        self.experiments: List[Experiment] = resolve_experiments(targets)
        self.work_root = work_root
        self.cfg_options = list(cfg_options)
        self.train_flags = ['--amp'] if amp else []
        self.runs = [
            self._plan(cell) for cell in unique_cells(self.experiments)
        ]
        os.makedirs(work_root, exist_ok=True)
        self.logger = MMLogger.get_instance(
            f'flower_sweep_{time.time_ns()}',
            logger_name='flower_sweep',
            log_file=osp.join(work_root, 'sweep.log'),
            file_mode='a')  # one history across resumed sweeps

    def _plan(self, cell: Cell) -> Run:
        """Check, before any training, that the config loads with the
        options and that its work dir holds no run with other options."""
        if not osp.isfile(cell.config_path):
            raise SweepError(f'Config file "{cell.config_path}" does not '
                             'exist.')
        try:
            cfg = Config.fromfile(cell.config_path)
            if self.cfg_options:
                cfg.merge_from_dict(parse_cfg_options(self.cfg_options))
            batch_size = int(cfg.train_dataloader.batch_size)
            max_epochs = int(cfg.train_cfg.max_epochs)
        except SweepError:
            raise
        except Exception as err:
            raise SweepError(f'Config "{cell.config_path}" with --cfg-options '
                             f'{self.cfg_options} cannot be read: '
                             f'{type(err).__name__}: {err}') from err
        run = Run(cell, osp.join(self.work_root, cell.name), batch_size,
                  max_epochs)
        state = self._read_state(run)
        if state and (state.get('cfg_options') != self.cfg_options
                      or state.get('train_flags') != self.train_flags):
            raise SweepError(
                f'{run.work_dir} holds a run of {cell.name} with '
                f'--cfg-options {state.get("cfg_options")} '
                f'{" ".join(state.get("train_flags", []))}, this sweep asks '
                f'for --cfg-options {self.cfg_options} '
                f'{" ".join(self.train_flags)}. Pass the same options, '
                'another --work-root, or delete that work dir to retrain.')
        return run

    @staticmethod
    def _read_state(run: Run) -> Optional[dict]:
        if not osp.isfile(run.state_path):
            return None
        try:
            with open(run.state_path) as f:
                return json.load(f)
        except (OSError, ValueError) as err:
            raise SweepError(
                f'Cannot read the sweep state "{run.state_path}" ({err}): '
                'delete it to resume that run from its checkpoints.')

    def _write_state(self, run: Run, status: str, **extra) -> None:
        state = self._read_state(run) or {}
        state.update(
            config=run.cell.config_path,
            cfg_options=self.cfg_options,
            train_flags=self.train_flags,
            status=status,
            **extra)
        os.makedirs(run.work_dir, exist_ok=True)
        # Never a half-written state.
        atomic_write_bytes(json.dumps(state, indent=2).encode(),
                           run.state_path)

    def status(self, run: Run) -> str:
        state = self._read_state(run)
        if state is None:
            return 'not run'
        return state['status']

    @staticmethod
    def latest_checkpoint(run: Run) -> Optional[str]:
        """The newest complete checkpoint in the work dir (a moved work
        root still resumes), as the checkpoint hook's auto-resume finds it."""
        return find_last_complete_checkpoint(run.work_dir)

    def train(self, run: Run) -> int:
        """Train (or resume) one run in its own process; its exit code."""
        cmd = [
            sys.executable, TRAIN_TOOL, run.cell.config_path, '--work-dir',
            run.work_dir, *self.train_flags
        ]
        resume_from = self.latest_checkpoint(run)
        if resume_from:
            cmd += ['--resume', resume_from]
        if self.cfg_options:
            cmd += ['--cfg-options', *self.cfg_options]
        self.logger.info(f'{run.cell.name}: ' +
                         (f'resuming from {osp.basename(resume_from)}'
                          if resume_from else 'training') +
                         f' into {run.work_dir}')
        self._write_state(run, 'running', device=describe_device())
        for handler in self.logger.handlers:
            handler.flush()
        # One process per run: its memory, registries and CUDA context go
        # when it ends. Its log streams to our stdout and stderr.
        proc = subprocess.Popen(cmd)
        try:
            return proc.wait()
        except KeyboardInterrupt:
            # Ctrl-C in a terminal reaches the child too: let it stop
            # cleanly, pass the signal on if it did not get it (a SIGTERM to
            # the sweep alone), then kill it rather than leave it training.
            for stop, timeout in ((None, 5), (signal.SIGINT, 30),
                                  (signal.SIGKILL, None)):
                if stop is not None:
                    proc.send_signal(stop)
                try:
                    proc.wait(timeout=timeout)
                    break
                except subprocess.TimeoutExpired:
                    pass
            raise

    def results(self) -> List[RunResult]:
        results = []
        runs = {run.cell.name: run for run in self.runs}
        for experiment in self.experiments:
            for cell in experiment.cells:
                run = runs[cell.name]
                state = self._read_state(run) or {}
                results.append(
                    collect_result(experiment, cell, run.work_dir,
                                   state.get('status', 'not run'),
                                   run.batch_size, run.max_epochs,
                                   state.get('device', '')))
        return results

    def write_results(self) -> List[RunResult]:
        results = self.results()
        base = osp.join(self.work_root, 'results')
        write_markdown(self.experiments, results, base + '.md')
        write_csv(results, base + '.csv')
        plot_results(self.experiments, results, base + '.png')
        return results

    def _summary(self, run: Run) -> str:
        result = next(r for r in self.results() if r.config == run.cell.name)
        if result.best_top1 is None:
            return f'{run.cell.name}: {result.status}, no val top-1 logged'
        return (f'{run.cell.name}: {result.status}, epoch '
                f'{result.epochs_done}/{run.max_epochs}, best val top-1 '
                f'{result.best_top1:.2f} (epoch {result.best_epoch}), '
                f'final {result.final_top1:.2f}')

    def run(self, collect_only: bool = False) -> List[str]:
        """Train what is not done yet; the names of the runs that failed."""
        failed = []
        total = len(self.runs)
        names = ', '.join(run.cell.name for run in self.runs)
        self.logger.info(f'Sweep of {total} runs into {self.work_root}: '
                         f'{names}')
        for i, run in enumerate(self.runs, 1):
            status = self.status(run)
            if status == 'done' or collect_only:
                self.logger.info(f'[{i}/{total}] skipped ({status}) '
                                 f'{self._summary(run)}')
                continue
            self.logger.info(f'[{i}/{total}] {run.cell.name} ({status})')
            start = time.time()
            try:
                returncode = self.train(run)
            except KeyboardInterrupt:
                self._write_state(run, 'interrupted')
                self.write_results()
                self.logger.info(
                    f'Interrupted in {run.cell.name}: run the same command '
                    'again to resume it and skip the finished runs.')
                raise
            minutes = (time.time() - start) / 60
            if returncode == 0:
                self._write_state(run, 'done')
            else:
                self._write_state(run, f'failed (exit {returncode})')
                failed.append(run.cell.name)
            self.write_results()
            self.logger.info(f'[{i}/{total}] {minutes:.1f} min, '
                             f'{self._summary(run)}')
        self.write_results()
        self.logger.info('Results: ' + ', '.join(
            osp.join(self.work_root, f'results.{ext}')
            for ext in ('md', 'csv', 'png')))
        if failed:
            self.logger.error(f'{len(failed)} runs failed: '
                              f'{", ".join(failed)}; their logs are above '
                              'and in their work dirs. Run the same command '
                              'again to retry them (finished runs are '
                              'skipped).')
        return failed
