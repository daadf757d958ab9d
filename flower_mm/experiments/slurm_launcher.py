"""A sweep's runs as Slurm jobs, with plain ``sbatch``, ``squeue`` and
``scontrol``.

Each run is one batch job that runs the run's ``tools/train.py`` command
under ``srun`` (as ``tools/slurm_train.sh`` does) with ``--resume``, so a
job that Slurm stops (time limit, pre-emption, ``scancel``, a failed node)
continues from its last complete checkpoint when it is submitted again,
by the next sweep command or by Slurm's own requeue. The sweep submits and
exits; the same command later reads where each job stands:

- ``squeue`` for the jobs Slurm still knows (pending, running, and ended
  ones for ``MinJobAge``, 300 s by default);
- the exit code the job's script writes when ``tools/train.py`` returns,
  ``<work dir>/slurm-<job id>.exit.json``: 0 is done (even while Slurm is
  still ending the job), anything else failed once the job has ended. A
  job that ended without writing it was stopped from outside.

No accounting (``sacct``) is needed, so a cluster without slurmdbd works.
"""
import getpass
import json
import os
import os.path as osp
import shlex
import shutil
import subprocess
from typing import Dict, List, NamedTuple, Optional, Sequence

from .registry import SweepError

# Job states of a job that may still run (squeue --states=all shows ended
# ones too: COMPLETED, FAILED, CANCELLED, TIMEOUT, PREEMPTED, NODE_FAIL...).
ACTIVE_STATES = {
    'PENDING', 'CONFIGURING', 'RUNNING', 'COMPLETING', 'SUSPENDED',
    'REQUEUED', 'REQUEUE_FED', 'REQUEUE_HOLD', 'RESIZING', 'RESV_DEL_HOLD',
    'SIGNALING', 'STAGE_OUT', 'STOPPED'
}
JOB_SCRIPT = 'slurm_job.sh'
TIMEOUT_S = 120  # for one Slurm command on a busy controller


class SlurmJob(NamedTuple):
    state: str  # squeue's %T
    reason: str  # why pending, or 'None'
    nodes: str


def _slurm(args: Sequence[str]) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(list(args), capture_output=True, text=True,
                              timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise SweepError(f'`{" ".join(args)}` did not answer in {TIMEOUT_S} '
                         's: is the Slurm controller (slurmctld) up?')


def _said(proc: subprocess.CompletedProcess) -> str:
    return ' '.join((proc.stderr.strip() or proc.stdout.strip()).split())


def slurm_jobs() -> Dict[str, SlurmJob]:
    """job id -> state of this user's jobs that Slurm remembers."""
    proc = _slurm([
        'squeue', '--noheader', '--states=all', f'--user={getpass.getuser()}',
        '--format=%i|%T|%r|%N'
    ])
    if proc.returncode != 0:
        raise SweepError(f'squeue failed: {_said(proc)}')
    jobs = {}
    for line in proc.stdout.splitlines():
        fields = line.strip().split('|')
        if len(fields) == 4:
            jobs[fields[0]] = SlurmJob(*fields[1:])
    return jobs


def exit_record_path(work_dir: str, job_id: str) -> str:
    return osp.join(work_dir, f'slurm-{job_id}.exit.json')


def read_exit_record(work_dir: str, job_id: str) -> Optional[dict]:
    """What the job's script wrote when tools/train.py returned, if it
    did."""
    try:
        with open(exit_record_path(work_dir, job_id)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


class SlurmLauncher:
    """Submit each run not done as a Slurm job to ``partition``.

    Args:
        partition: The partition (``sbatch --partition``).
        gpus_per_run: GPUs per job, one task each (``--gres=gpu:G``,
            data-parallel with ``--launcher slurm`` above 1); 0 for CPU
            partitions.
        time: The jobs' time limit (``sbatch --time``), e.g. ``4:00:00``.
        slurm_args: More ``sbatch`` options, e.g. ``--qos=high``.
    """

    def __init__(self,
                 partition: str,
                 gpus_per_run: int = 1,
                 time: Optional[str] = None,
                 slurm_args: Sequence[str] = ()):
        if gpus_per_run < 0:
            raise SweepError(f'--gpus-per-run {gpus_per_run}: give 0 (CPU) '
                             'or more GPUs per job.')
        self.partition = partition
        self.gpus_per_run = gpus_per_run
        self.time = time
        self.slurm_args = list(slurm_args)

    def describe(self) -> str:
        return (f'as Slurm jobs on partition {self.partition}, '
                f'{self._resources()} each')

    def _resources(self) -> str:
        if not self.gpus_per_run:
            return 'CPU only'
        return f'{self.gpus_per_run} GPU' + ('s' * (self.gpus_per_run > 1))

    def check(self, sweep) -> None:
        """Slurm's commands are here, its controller answers and knows the
        partition: else one error before anything is submitted."""
        for tool in ('sbatch', 'squeue', 'scontrol'):
            if shutil.which(tool) is None:
                raise SweepError(
                    f'--launcher slurm: `{tool}` is not on PATH. Run the '
                    'sweep where Slurm\'s commands are (a login node of the '
                    'cluster), or install them (Debian: apt-get install '
                    'slurm-client); without Slurm leave --launcher out.')
        proc = _slurm(
            ['scontrol', 'show', 'partition', self.partition, '--oneliner'])
        if proc.returncode == 0 and proc.stdout.strip():
            return
        said = _said(proc)
        if 'not found' not in said.lower():
            raise SweepError(
                f'Slurm does not answer: `scontrol show partition '
                f'{self.partition}` says "{said}". Check that its controller '
                '(slurmctld) runs and that this machine\'s slurm.conf (or '
                'SLURM_CONF) names it.')
        listing = _slurm(['scontrol', 'show', 'partition', '--oneliner'])
        names = [
            word.split('=', 1)[1] for word in listing.stdout.split()
            if word.startswith('PartitionName=')
        ]
        raise SweepError(
            f'Slurm has no partition "{self.partition}" (it has: '
            f'{", ".join(names) or "none"}): pass one of them to '
            '--partition.')

    def job_script(self, sweep, run) -> str:
        """The batch script of a run: the same every time it is submitted,
        since ``--resume`` finds where the run stands by itself."""
        gpus = self.gpus_per_run
        tasks = max(gpus, 1)
        command = sweep.train_command(run)
        if gpus > 1:  # one process per GPU, as tools/slurm_train.sh
            command += ['--launcher', 'slurm']
        directives = [
            f'--job-name={run.cell.name}.seed{run.seed}',
            f'--partition={self.partition}',
            f'--output={run.log_path}',
            '--open-mode=append',  # every session in one train.log
            '--nodes=1',
            f'--ntasks={tasks}',
        ]
        if gpus:
            directives.append(f'--gres=gpu:{gpus}')
        if self.time:
            directives.append(f'--time={self.time}')
        # exit_record_path(), with the job id filled in by the shell.
        record = shlex.quote(osp.join(run.work_dir, 'slurm-')) + \
            '"${SLURM_JOB_ID}".exit.json'
        lines = [
            '#!/bin/bash',
            *(f'#SBATCH {d}' for d in directives),
            f'# {run.name}, written by tools/sweep.py. The sweep submits it '
            'again until the run is done;',
            '# tools/train.py --resume continues from the latest complete '
            'checkpoint.',
            f'cd {shlex.quote(os.getcwd())}',
            'echo "job ${SLURM_JOB_ID} on ${SLURMD_NODENAME}: '
            f'{run.name}"',
        ]
        if gpus > 1:
            # Two jobs on one node must not share torch.distributed's port.
            lines.append('export MASTER_PORT=$((20000 + SLURM_JOB_ID % 20000))')
        lines += [
            'srun --kill-on-bad-exit=1 ' + shlex.join(command),
            'code=$?',
            # Written last and renamed into place: present means finished.
            'printf \'{"exit_code": %d, "node": "%s"}\\n\' "$code" '
            f'"$SLURMD_NODENAME" > {record}.tmp && mv {record}.tmp {record}',
            'exit $code',
            '',
        ]
        return '\n'.join(lines)

    def submit(self, sweep, run) -> str:
        os.makedirs(run.work_dir, exist_ok=True)
        script = osp.join(run.work_dir, JOB_SCRIPT)
        with open(script, 'w') as f:
            f.write(self.job_script(sweep, run))
        proc = _slurm(['sbatch', '--parsable', *self.slurm_args, script])
        if proc.returncode != 0:
            raise SweepError(f'{run.name}: sbatch refused {script}: '
                             f'{_said(proc)}')
        job_id = proc.stdout.strip().split(';')[0]
        sweep.write_state(run, 'queued', job_id=job_id,
                          device=f'Slurm {self.partition}, '
                          f'{self._resources()}')
        return job_id

    def launch(self, sweep) -> List[str]:
        """Look at every run once: report it, mark finished jobs done, and
        submit what is neither done nor queued or running (again). The
        names of the runs whose job failed."""
        jobs = slurm_jobs()
        total = len(sweep.runs)
        failed, counts = [], {}
        for number, run in enumerate(sweep.runs, 1):
            tag = f'[{number}/{total}]'
            state = sweep.read_state(run) or {}
            status, job_id = state.get('status', 'not run'), \
                state.get('job_id')
            if status == 'done':
                sweep.logger.info(f'{tag} skipped (done) {sweep.summary(run)}')
                counts['done'] = counts.get('done', 0) + 1
                continue
            job = jobs.get(job_id) if job_id else None
            record = read_exit_record(run.work_dir, job_id) if job_id else None
            # Training returned 0: done, even while the job is still ending.
            if record is not None and record.get('exit_code') == 0:
                sweep.write_state(
                    run, 'done',
                    device=f'Slurm {self.partition}, {self._resources()} '
                    f'on {record.get("node")}')
                sweep.logger.info(f'{tag} {sweep.summary(run)} (job '
                                  f'{job_id})')
                counts['done'] = counts.get('done', 0) + 1
                continue
            if job is not None and job.state in ACTIVE_STATES:
                status = 'queued' if job.state == 'PENDING' else 'running'
                sweep.write_state(run, status)
                where = (f'waiting: {job.reason}' if status == 'queued' else
                         f'on {job.nodes}')
                sweep.logger.info(f'{tag} {sweep.summary(run)} (job {job_id}'
                                  f', {where})')
                counts[status] = counts.get(status, 0) + 1
                continue
            if record is not None:
                failed.append(run.name)
                sweep.logger.error(
                    f'{run.name}: job {job_id} failed (exit '
                    f'{record.get("exit_code")}); its log: {run.log_path}. '
                    'Submitting it again.')
            elif job_id:
                ended = job.state if job else 'no longer known to Slurm'
                sweep.logger.warning(
                    f'{run.name}: job {job_id} ended before the run finished '
                    f'({ended}: cancelled, out of time, pre-empted or its '
                    f'node failed); its log: {run.log_path}. Submitting it '
                    'again.')
            start = sweep.start_point(run)
            new_id = self.submit(sweep, run)
            sweep.logger.info(f'{tag} {run.name}: submitted job {new_id} '
                              f'({start}), log {run.log_path}')
            counts['queued'] = counts.get('queued', 0) + 1
        done = counts.get('done', 0)
        summary = ', '.join(f'{counts.get(k, 0)} {k}'
                            for k in ('done', 'running', 'queued'))
        if done == total:
            sweep.logger.info(f'All {total} runs done.')
        else:
            sweep.logger.info(
                f'{summary} of {total} runs. Run the same command again to '
                'see where they stand, resubmit those that stopped, and '
                'complete the tables when all are done.')
        return failed
