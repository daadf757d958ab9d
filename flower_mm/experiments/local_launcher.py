"""A sweep's runs on this machine: one after another, or ``--gpus K`` at
once, each with one GPU of its own (``CUDA_VISIBLE_DEVICES``)."""
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from typing import List, NamedTuple, Optional

from ..utils.machine import describe_device
from .registry import SweepError


class Gpu(NamedTuple):
    uuid: str  # what the run's CUDA_VISIBLE_DEVICES names
    index: str
    name: str


def list_gpus() -> List[Gpu]:
    """The NVIDIA GPUs ``nvidia-smi`` lists, narrowed to those
    ``CUDA_VISIBLE_DEVICES`` names (by index or UUID) when it is set."""
    smi = shutil.which('nvidia-smi')
    gpus = []
    if smi:
        proc = subprocess.run(
            [smi, '--query-gpu=index,uuid,name', '--format=csv,noheader'],
            capture_output=True, text=True, timeout=120)
        for line in proc.stdout.splitlines() if proc.returncode == 0 else ():
            fields = [f.strip() for f in line.split(',', 2)]
            if len(fields) == 3:
                gpus.append(Gpu(fields[1], fields[0], fields[2]))
    visible = os.environ.get('CUDA_VISIBLE_DEVICES')
    if visible is not None:
        wanted = [v.strip() for v in visible.split(',') if v.strip()]
        gpus = [g for w in wanted for g in gpus if w in (g.index, g.uuid)]
    return gpus


def pick_gpus(count: int) -> List[Gpu]:
    """The first ``count`` GPUs; an error before anything starts when the
    machine has fewer."""
    if count < 1:
        raise SweepError(f'--gpus {count}: give the number of runs to train '
                         'at once, one GPU each (at least 1).')
    gpus = list_gpus()
    if count <= len(gpus):
        return gpus[:count]
    if shutil.which('nvidia-smi') is None:
        seen = 'nvidia-smi is not installed here, so no GPU is visible'
    else:
        seen = f'this machine has {len(gpus)} GPU{"s" * (len(gpus) != 1)}'
        if 'CUDA_VISIBLE_DEVICES' in os.environ:
            seen += (' that CUDA_VISIBLE_DEVICES='
                     f'{os.environ["CUDA_VISIBLE_DEVICES"]} leaves visible')
        if gpus:
            seen += f' ({", ".join(g.index for g in gpus)})'
    hint = (f'ask for at most --gpus {len(gpus)}' if gpus else
            'leave --gpus out to train the runs one after another')
    raise SweepError(f'--gpus {count} asks for {count} runs at once, one GPU '
                     f'each, but {seen}; {hint}.')


class _Active(NamedTuple):
    number: int  # [number/total] in the log
    run: object
    proc: subprocess.Popen
    gpu: Optional[Gpu]
    started: float
    echo: Optional[threading.Thread]


def _copy_lines(source, log, echo: bool) -> None:
    """A run's output into its log file (and the terminal)."""
    for line in iter(source.readline, b''):
        log.write(line)
        log.flush()
        if echo:
            sys.stdout.write(line.decode(errors='replace'))
            sys.stdout.flush()
    source.close()
    log.close()


def stop_processes(procs) -> None:
    """Ctrl-C in a terminal reaches the runs too: let them stop cleanly,
    pass the signal on to those that did not get it (a SIGTERM to the sweep
    alone), then kill what still trains rather than leave it running."""
    for stop, timeout in ((None, 5), (signal.SIGINT, 30),
                          (signal.SIGKILL, None)):
        alive = [p for p in procs if p.poll() is None]
        if not alive:
            return
        for proc in alive:
            if stop is not None:
                proc.send_signal(stop)
        deadline = None if timeout is None else time.monotonic() + timeout
        for proc in alive:
            try:
                proc.wait(None if deadline is None else
                          max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass


class LocalLauncher:
    """Train on this machine, each run in a ``tools/train.py`` process of
    its own (its memory, registries and CUDA context go when it ends).

    Without ``gpus`` the runs go one after another, their output streamed
    to the terminal, on whatever device ``tools/train.py`` picks. With
    ``gpus=K``, K runs at once, each seeing one GPU and a 1/K share of the
    CPU cores (its loader workers follow); their output goes to their
    ``train.log`` only. Either way each run's output is also in its
    ``<work dir>/train.log``.
    """

    def __init__(self, gpus: Optional[int] = None):
        self.gpus: List[Optional[Gpu]] = \
            [None] if gpus is None else pick_gpus(gpus)

    def describe(self) -> str:
        if self.gpus == [None]:
            return 'one at a time on this machine'
        return (f'{len(self.gpus)} at once on this machine, one GPU each ('
                + ', '.join(f'GPU {g.index}' for g in self.gpus) + ')')

    def check(self, sweep) -> None:
        """Refuse runs that a Slurm job of an earlier sweep still trains."""
        from .slurm_launcher import ACTIVE_STATES, slurm_jobs
        submitted = {}
        for run in sweep.runs:
            state = sweep.read_state(run) or {}
            if state.get('job_id') and state.get('status') in ('queued',
                                                                'running'):
                submitted[state['job_id']] = run
        if not submitted or shutil.which('squeue') is None:
            return
        try:
            jobs = slurm_jobs()
        except SweepError as err:
            job_id, run = next(iter(submitted.items()))
            raise SweepError(
                f'{run.name} was submitted to Slurm as job {job_id}, and '
                f'Slurm cannot say whether it still runs ({err}). Follow it '
                f'with --launcher slurm, or delete {run.state_path} if it '
                'is gone.') from err
        for job_id, run in submitted.items():
            if job_id in jobs and jobs[job_id].state in ACTIVE_STATES:
                raise SweepError(
                    f'{run.name} is Slurm job {job_id} '
                    f'({jobs[job_id].state}): wait for it with --launcher '
                    f'slurm, or `scancel {job_id}`, before training it here.')

    def _cpu_share(self, slot: int) -> Optional[set]:
        if len(self.gpus) == 1 or not hasattr(os, 'sched_getaffinity'):
            return None
        cores = sorted(os.sched_getaffinity(0))
        share = cores[slot::len(self.gpus)]
        return set(share) or None

    def _start(self, sweep, number: int, run, status: str,
               gpu: Optional[Gpu]) -> _Active:
        total = len(sweep.runs)
        sweep.logger.info(f'[{number}/{total}] {run.name} ({status})')
        where = f' on GPU {gpu.index} ({gpu.name})' if gpu else ''
        sweep.logger.info(f'{run.name}: {sweep.start_point(run)} into '
                          f'{run.work_dir}{where}')
        sweep.write_state(
            run, 'running',
            device=f'1x {gpu.name}' if gpu else describe_device())
        for handler in sweep.logger.handlers:
            handler.flush()
        env = dict(os.environ)
        if gpu:
            env['CUDA_VISIBLE_DEVICES'] = gpu.uuid
        log = open(run.log_path, 'ab')
        proc = subprocess.Popen(
            sweep.train_command(run), env=env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT)
        cores = self._cpu_share(self.gpus.index(gpu))
        if cores:
            os.sched_setaffinity(proc.pid, cores)
        echo = threading.Thread(
            target=_copy_lines, args=(proc.stdout, log, gpu is None),
            daemon=True)
        echo.start()
        return _Active(number, run, proc, gpu, time.time(), echo)

    @staticmethod
    def _finish(sweep, active: _Active, failed: List[str]) -> None:
        active.echo.join()
        run, code = active.run, active.proc.returncode
        if code == 0:
            sweep.write_state(run, 'done')
        else:
            sweep.write_state(run, f'failed (exit {code})')
            failed.append(run.name)
            sweep.logger.error(f'{run.name}: training failed (exit {code});'
                               f' its log: {run.log_path}')
        sweep.write_results()
        minutes = (time.time() - active.started) / 60
        sweep.logger.info(f'[{active.number}/{len(sweep.runs)}] '
                          f'{minutes:.1f} min, {sweep.summary(run)}')

    def launch(self, sweep) -> List[str]:
        """Train every run not done yet; the names of those that failed."""
        queue = []
        for number, run in enumerate(sweep.runs, 1):
            status = sweep.status(run)
            if status == 'done':
                sweep.logger.info(f'[{number}/{len(sweep.runs)}] skipped '
                                  f'(done) {sweep.summary(run)}')
            else:
                queue.append((number, run, status))
        free, active, failed = list(self.gpus), [], []
        try:
            while queue or active:
                while queue and free:
                    active.append(self._start(sweep, *queue.pop(0),
                                              free.pop(0)))
                time.sleep(0.2)
                for ended in [a for a in active if a.proc.poll() is not None]:
                    active.remove(ended)
                    free.append(ended.gpu)
                    self._finish(sweep, ended, failed)
        except KeyboardInterrupt:
            stop_processes([a.proc for a in active])
            for a in active:
                sweep.write_state(a.run, 'interrupted')
            sweep.write_results()
            sweep.logger.info(
                'Interrupted in ' + ', '.join(a.run.name for a in active) +
                ': run the same command again to resume and skip the '
                'finished runs.')
            raise
        if failed:
            sweep.logger.error(
                f'{len(failed)} runs failed: {", ".join(failed)}; their logs '
                'are their work dirs\' train.log. Run the same command again '
                'to retry them (finished runs are skipped).')
        return failed
