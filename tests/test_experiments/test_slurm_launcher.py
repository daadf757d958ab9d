"""tools/sweep.py --launcher slurm on a real one-node Slurm cluster of this
machine (Debian's slurm-wlm and munge, started here, stopped by PID): a
2-config x 2-seed sweep submitted, one job cancelled mid-run and brought
back by the next command from its last checkpoint, the tables from the 4
runs; a failing job, a missing or silent Slurm, an unknown partition."""
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

import pytest
from conftest import assert_user_error, run_tool
from sweep_checks import (SWEEP, TEST_HOOKS_ENV, assert_cell_matches_logs,
                          logged_val_top1, read_csv, sweep_options,
                          write_config)

from flower_mm.experiments import SlurmLauncher, Sweep, SweepError

PARTITION = 'flowers'
DAEMONS = ('munged', 'slurmctld', 'slurmd')
SBIN_PATH = os.pathsep.join([os.environ.get('PATH', ''), '/usr/sbin', '/sbin'])


class Cluster(NamedTuple):
    conf: Path
    env: dict  # for the tools: SLURM_CONF

    def run(self, *args, check=True) -> subprocess.CompletedProcess:
        return subprocess.run(list(args), env=dict(os.environ, **self.env),
                              capture_output=True, text=True, timeout=120,
                              check=check)

    def jobs(self) -> dict:
        """job id -> state, of every job Slurm remembers."""
        out = self.run('squeue', '--noheader', '--states=all',
                       '--format=%i %T').stdout
        return dict(line.split() for line in out.splitlines())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def wait_for(condition, what: str, timeout: float = 900, details=None):
    """Poll ``condition`` (a busy 2-core machine is slow: generous)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f'timed out waiting for {what}' +
                                 (f':\n{details()}' if details else ''))
        time.sleep(0.5)


SLURM_CONF = """\
ClusterName=flowertest
SlurmctldHost={host}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
AuthType=auth/munge
AuthInfo=socket={root}/munge.socket
CredType=cred/munge
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
KillWait=5
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} State=UNKNOWN
PartitionName={partition} Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)


@pytest.fixture(scope='module')
def slurm_cluster(tmp_path_factory):
    """munged, slurmctld and slurmd for this host, on free ports, with a
    slurm.conf, key and state in a temporary folder; one partition of all
    its cores, no accounting. Jobs left are cancelled at the end, then the
    daemons are stopped by PID."""
    tools = {t: shutil.which(t, path=SBIN_PATH) for t in DAEMONS}
    missing = [t for t in (*DAEMONS, 'sbatch', 'squeue', 'scancel')
               if not (tools.get(t) or shutil.which(t))]
    if missing:
        pytest.fail(f'Slurm is not installed ({", ".join(missing)} '
                    'missing): apt-get install slurm-wlm munge, as .ci/run '
                    'does.')
    if os.geteuid() != 0:
        pytest.fail('The test cluster\'s slurmd runs jobs as root: run the '
                    'Slurm tests as root, as CI does.')
    root = tmp_path_factory.mktemp('slurm')
    for folder in ('state', 'spool'):
        (root / folder).mkdir()
    key = root / 'munge.key'
    key.write_bytes(os.urandom(1024))
    key.chmod(0o600)
    host = socket.gethostname().split('.')[0]
    conf = root / 'slurm.conf'
    conf.write_text(SLURM_CONF.format(
        host=host, root=root, ctld_port=free_port(), slurmd_port=free_port(),
        cpus=os.cpu_count(), partition=PARTITION))
    cluster = Cluster(conf, {'SLURM_CONF': str(conf)})
    daemons = []

    def start(*cmd):
        log = open(root / f'{Path(cmd[0]).name}.out', 'w')
        daemons.append(subprocess.Popen(cmd, stdout=log,
                                        stderr=subprocess.STDOUT,
                                        env=dict(os.environ, **cluster.env)))

    def daemon_logs():
        return '\n'.join(f'--- {p.name}\n{p.read_text()[-2000:]}'
                         for p in sorted(root.glob('*.out')) +
                         sorted(root.glob('*.log')))

    try:
        start(tools['munged'], '--foreground', '--force',
              f'--socket={root}/munge.socket', f'--key-file={key}',
              f'--pid-file={root}/munged.pid',
              f'--log-file={root}/munged.log',
              f'--seed-file={root}/munged.seed')
        wait_for((root / 'munge.socket').exists, 'munged', 60, daemon_logs)
        start(tools['slurmctld'], '-D', '-f', str(conf))
        start(tools['slurmd'], '-D', '-f', str(conf))
        wait_for(lambda: cluster.run(
            'sinfo', '--noheader', '--format=%t', check=False).stdout.strip()
            == 'idle', 'the node to be idle', 120, daemon_logs)
        yield cluster
    finally:
        if len(daemons) == len(DAEMONS):
            cluster.run('scancel', f'--partition={PARTITION}', check=False)
            wait_for(lambda: not any(
                s in ('PENDING', 'RUNNING', 'COMPLETING')
                for s in cluster.jobs().values()), 'jobs to end', 120)
        for proc in reversed(daemons):
            stop(proc)


def test_slurm_sweep_resumes_a_cancelled_job_and_tabulates_4_runs(
        slurm_cluster, tmp_path, flower_data_root, resnet18_ckpt,
        monkeypatch):
    # tiny_a's seed 1 parks one iteration into epoch 2, after its epoch-1
    # checkpoint, until it is cancelled; resumed, it goes on.
    marker = tmp_path / 'parked'
    configs = [
        write_config(
            tmp_path / 'tiny_a.py', 'resnet18_flowers.py', 2,
            hooks=f'dict(park=dict(type="ParkTrainingHook", epoch=2, iter=1, '
            f'marker={str(marker)!r}, seed=1))'),
        write_config(tmp_path / 'tiny_b.py', 'resnet18_flowers_bs64.py', 2)
    ]
    work_root = tmp_path / 'sweep'
    options = sweep_options(flower_data_root, resnet18_ckpt)
    cmd = [
        SWEEP, *configs, '--seeds', '2', '--launcher', 'slurm',
        '--partition', PARTITION, '--gpus-per-run', '0',
        '--slurm-args=--comment=sweep-e2e', '--work-root', work_root,
        '--cfg-options', *options
    ]
    env = dict(TEST_HOOKS_ENV, **slurm_cluster.env)
    names = [f'tiny_{c}/seed{s}' for c in 'ab' for s in (0, 1)]

    def state(name):
        return json.loads((work_root / name / 'sweep_run.json').read_text())

    def logs():
        return '\n'.join(f'--- {n}\n' + (work_root / n / 'train.log')
                         .read_text()[-3000:] for n in names
                         if (work_root / n / 'train.log').exists()) + \
            f'\n--- squeue\n{slurm_cluster.jobs()}'

    # 1. Submit the 4 runs and return.
    out = run_tool(cmd, cwd=tmp_path, env=env).stdout
    jobs = {name: state(name)['job_id'] for name in names}
    for number, name in enumerate(names, 1):
        assert (f'[{number}/4] {name}: submitted job {jobs[name]} (training '
                f'from scratch), log {work_root / name / "train.log"}') in out
        assert state(name)['status'] == 'queued'
    assert '0 done, 0 running, 4 queued of 4 runs' in out
    comments = dict(line.split() for line in slurm_cluster.run(
        'squeue', '--noheader', '--states=all', '--format=%i %k').stdout
        .splitlines())
    assert {comments[job] for job in jobs.values()} == {'sweep-e2e'}
    script = (work_root / 'tiny_a/seed1/slurm_job.sh').read_text()
    assert f'#SBATCH --partition={PARTITION}' in script
    assert 'tools/train.py' in script and ' --resume ' in script
    assert 'randomness.seed=1' in script
    # Meanwhile the runs are Slurm's: a sweep on this machine keeps off.
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SweepError, match=(
            f'tiny_a/seed0 is Slurm job {jobs["tiny_a/seed0"]} '
            '\\((PENDING|RUNNING)\\): wait for it with --launcher slurm, or '
            f'`scancel {jobs["tiny_a/seed0"]}`, before training it here.')):
        Sweep(configs, str(work_root), options, seeds=2).run()

    # 2. Cancel tiny_a/seed1 in epoch 2; the next command finds it stopped
    # and submits it again, to resume from epoch 1.
    victim = work_root / 'tiny_a' / 'seed1'
    wait_for(marker.exists, 'tiny_a/seed1 to reach epoch 2', details=logs)
    assert (victim / 'epoch_1.pth').is_file()
    assert not (victim / 'epoch_2.pth').exists()
    slurm_cluster.run('scancel', jobs['tiny_a/seed1'])
    wait_for(lambda: slurm_cluster.jobs().get(jobs['tiny_a/seed1']) ==
             'CANCELLED', 'the cancelled job to end', details=logs)
    out = run_tool(cmd, cwd=tmp_path, env=env).stdout
    assert (f'tiny_a/seed1: job {jobs["tiny_a/seed1"]} ended before the run '
            'finished (CANCELLED: cancelled, out of time, pre-empted or its '
            f'node failed); its log: {victim / "train.log"}') in out
    resumed_job = state('tiny_a/seed1')['job_id']
    assert (f'[2/4] tiny_a/seed1: submitted job {resumed_job} (resuming from '
            'epoch_1.pth)') in out
    assert out.count('submitted job') == 1  # the others were left alone

    # 3. When all have ended, the next command finds 4 runs done.
    wait_for(lambda: all(
        (work_root / n / f'slurm-{state(n)["job_id"]}.exit.json').exists()
        for n in names), 'the 4 runs to end', details=logs)
    out = run_tool(cmd, cwd=tmp_path, env=env).stdout
    assert 'All 4 runs done.' in out
    host = socket.gethostname().split('.')[0]
    for name in names:
        assert state(name)['status'] == 'done'
        assert state(name)['device'] == f'Slurm {PARTITION}, CPU only on {host}'
        assert sorted(logged_val_top1(work_root / name)) == [1, 2]
    # Resumed from its epoch-1 checkpoint: its second session trained
    # epoch 2 only.
    sessions = sorted(victim.glob('*/vis_data/scalars.json'))
    assert len(sessions) == 2
    assert {json.loads(line)['epoch'] for line in
            sessions[1].read_text().splitlines() if '"loss"' in line} == {2}
    assert 'resumed epoch: 1' in (victim / 'train.log').read_text()

    # The tables: mean ± sample std over the 2 seeds of each config.
    rows = {r['config']: r for r in read_csv(work_root / 'results.csv')}
    bests = {c: assert_cell_matches_logs(work_root, rows[c], [0, 1])
             for c in ('tiny_a', 'tiny_b')}
    difference, = read_csv(work_root / 'results_differences.csv')
    ours = sum(bests['tiny_b']) / 2 - sum(bests['tiny_a']) / 2
    assert difference['difference'] == 'tiny_b - tiny_a'
    assert float(difference['ours']) == pytest.approx(ours)
    if len(set(bests['tiny_a'])) + len(set(bests['tiny_b'])) == 2:
        assert difference['note'] == ('every seed scored the same: no '
                                      'spread to measure')
    else:
        assert difference['method'] == 'Welch t, 2 + 2 seeds'
        assert float(difference['low']) <= ours <= float(difference['high'])
    markdown = (work_root / 'results.md').read_text()
    assert f'| 2 | {float(rows["tiny_b"]["best_top1"]):.2f} ± ' in markdown

    # 4. Again: nothing is submitted, nothing in the work dirs changes.
    before = {p: p.stat().st_mtime_ns for p in work_root.glob('tiny_*/**/*')}
    launcher = SlurmLauncher(PARTITION, gpus_per_run=0)
    sweep = Sweep(configs, str(work_root), options, seeds=2,
                  launcher=launcher)
    assert sweep.run() == []
    assert {p: p.stat().st_mtime_ns
            for p in work_root.glob('tiny_*/**/*')} == before


def test_a_failing_job_is_named_with_its_log_and_submitted_again(
        slurm_cluster, tmp_path, flower_data_root, resnet18_ckpt):
    # 7 classes for 5 class folders: tools/train.py stops with an error.
    config = tmp_path / 'seven_classes.py'
    write_config(config, 'resnet18_flowers.py', 1)
    config.write_text(config.read_text() +
                      'model = dict(head=dict(num_classes=7))\n')
    work_root = tmp_path / 'sweep'
    cmd = [
        SWEEP, config, '--launcher', 'slurm', '--partition', PARTITION,
        '--gpus-per-run', '0', '--work-root', work_root, '--cfg-options',
        *sweep_options(flower_data_root, resnet18_ckpt)
    ]
    run_dir = work_root / 'seven_classes' / 'seed0'
    run_tool(cmd, cwd=tmp_path, env=slurm_cluster.env)
    job = json.loads((run_dir / 'sweep_run.json').read_text())['job_id']
    wait_for(lambda: (run_dir / f'slurm-{job}.exit.json').exists() and
             slurm_cluster.jobs().get(job) == 'FAILED', 'the job to fail',
             details=lambda: (run_dir / 'train.log').read_text()[-3000:])

    proc = run_tool(cmd, cwd=tmp_path, env=slurm_cluster.env, check=False)
    assert proc.returncode == 1
    log = run_dir / 'train.log'
    assert (f'seven_classes/seed0: job {job} failed (exit 1); its log: {log}. '
            'Submitting it again.') in proc.stdout
    assert 'error: ' in log.read_text() and 'num_classes' in log.read_text()
    state = json.loads((run_dir / 'sweep_run.json').read_text())
    assert state['job_id'] != job and state['status'] == 'queued'
    slurm_cluster.run('scancel', state['job_id'])


def test_slurm_missing_silent_or_without_the_partition_submits_nothing(
        slurm_cluster, tmp_path):
    work_root = tmp_path / 'sweep'
    cmd = [SWEEP, 'table3', '--launcher', 'slurm', '--work-root', work_root]

    proc = run_tool([*cmd, '--partition', 'gpu-a100'], cwd=tmp_path,
                    env=slurm_cluster.env, check=False)
    assert_user_error(proc, f'Slurm has no partition "gpu-a100" (it has: '
                      f'{PARTITION}): pass one of them to --partition.')

    # No Slurm commands on PATH (python itself is named by its full path).
    proc = run_tool([*cmd, '--partition', PARTITION], cwd=tmp_path,
                    env={'PATH': str(Path(sys.executable).parent)},
                    check=False)
    assert_user_error(proc, '--launcher slurm: `sbatch` is not on PATH.')

    # A slurm.conf whose controller nobody answers at (given up on after
    # 1 s instead of 9).
    silent = tmp_path / 'slurm.conf'
    silent.write_text(slurm_cluster.conf.read_text().replace(
        'SlurmctldPort=', f'SlurmctldPort={free_port()}\n#') +
        'MessageTimeout=2\n')
    proc = run_tool([*cmd, '--partition', PARTITION], cwd=tmp_path,
                    env={'SLURM_CONF': str(silent)}, check=False)
    assert_user_error(proc, 'Slurm does not answer: `scontrol show partition '
                      f'{PARTITION}` says "', 'Unable to contact slurm '
                      'controller', 'Check that its controller (slurmctld) '
                      'runs')
    assert list(work_root.glob('**/sweep_run.json')) == []
    assert list(work_root.glob('**/slurm_job.sh')) == []


def test_a_job_of_several_gpus_is_one_data_parallel_task_per_gpu(tmp_path):
    # No cluster needed: the script a 2-GPU job would run.
    sweep = Sweep(['table3'], str(tmp_path / 'sweep'), seeds=2)
    launcher = SlurmLauncher('gpu', gpus_per_run=2, time='8:00:00',
                             slurm_args=['--qos=high'])
    run = sweep.runs[1]
    lines = launcher.job_script(sweep, run).splitlines()
    assert [line for line in lines if line.startswith('#SBATCH')] == [
        '#SBATCH --job-name=resnet50_flowers.seed1',
        '#SBATCH --partition=gpu',
        f'#SBATCH --output={run.work_dir}/train.log',
        '#SBATCH --open-mode=append', '#SBATCH --nodes=1',
        '#SBATCH --ntasks=2', '#SBATCH --gres=gpu:2', '#SBATCH --time=8:00:00'
    ]
    srun, = [line for line in lines if line.startswith('srun ')]
    assert srun.endswith(' --resume --cfg-options randomness.seed=1 '
                         '--launcher slurm')
    # Two such jobs on one node do not share torch.distributed's port.
    assert 'export MASTER_PORT=$((20000 + SLURM_JOB_ID % 20000))' in lines
    assert launcher.describe() == ('as Slurm jobs on partition gpu, 2 GPUs '
                                   'each')
