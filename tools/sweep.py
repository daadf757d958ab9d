"""Train the report's experiments, or any configs, with N seeds each.

    python tools/sweep.py {table1,table2,table3,all | CONFIG ...}
        [--seeds N] [--work-root DIR] [--cfg-options K=V ...] [--amp]
        [--gpus K | --launcher slurm --partition P [--gpus-per-run G]
         [--time T] [--slurm-args "ARGS"]] [--collect-only]

Each run (config, seed) trains with tools/train.py into
<work-root>/<config name>/seed<S>: one after another here, K at once with
--gpus K, or as Slurm jobs. Run the same command again after an
interruption (or to follow Slurm jobs): finished runs are skipped, the
others resume from their latest checkpoint. Per cell the mean and spread
over seeds, per table the report's differences with a 95 % interval and a
verdict, go to <work-root>/results.md, results.csv,
results_differences.csv and results.png.
"""
import argparse
import shlex
import signal

from flower_mm.experiments import (EXPERIMENTS, LocalLauncher, SlurmLauncher,
                                   Sweep, SweepError)
from flower_mm.utils import AMP_FLAG_HELP, exit_on_user_error


def experiments_help() -> str:
    lines = ['experiments (config: report val top-1 %):']
    for experiment in EXPERIMENTS.values():
        cells = ', '.join(f'{c.name}: {c.report_top1}'
                          for c in experiment.cells)
        lines.append(f'  {experiment.name}  {experiment.title}: {cells}')
    lines.append('  all     every config of the three tables, each once')
    return '\n'.join(lines)


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description='Train a sweep of configs and tabulate their val top-1',
        epilog=experiments_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        'targets',
        nargs='+',
        metavar='EXPERIMENT|CONFIG',
        help='experiment names (table1, table2, table3, all) or config files')
    parser.add_argument(
        '--work-root',
        default='work_dirs/sweep',
        help='each run trains into WORK_ROOT/<config name>/seed<S>; the '
        'results tables go to WORK_ROOT (default: %(default)s)')
    parser.add_argument(
        '--seeds',
        type=int,
        default=1,
        metavar='N',
        help='runs per config: randomness.seed of the config and the next '
        'N-1 integers (default: %(default)s)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        default=[],
        metavar='KEY=VALUE',
        help='passed to every run\'s tools/train.py --cfg-options')
    parser.add_argument(
        '--amp',
        action='store_true',
        help=f'train every run in {AMP_FLAG_HELP}')
    parser.add_argument(
        '--collect-only',
        action='store_true',
        help='train nothing: write the results of the runs so far')
    where = parser.add_argument_group(
        'where runs execute (default: one after another on this machine)')
    where.add_argument(
        '--launcher',
        choices=['local', 'slurm'],
        default='local',
        help='local: this machine; slurm: one Slurm job per run, submitted '
        'by this command, which then exits: run it again to see where the '
        'jobs stand, resubmit stopped or failed ones and write the tables')
    where.add_argument(
        '--gpus',
        type=int,
        metavar='K',
        help='local: K runs at once, each with one GPU of its own')
    where.add_argument('--partition', help='slurm: the partition')
    where.add_argument(
        '--gpus-per-run',
        type=int,
        metavar='G',
        help='slurm: GPUs per job, 0 for a CPU partition (default: 1)')
    where.add_argument(
        '--time', metavar='T', help='slurm: time limit per job, e.g. 4:00:00')
    where.add_argument(
        '--slurm-args',
        default='',
        metavar='"ARGS"',
        help='slurm: more sbatch options, in one quoted string, e.g. '
        '--slurm-args="--qos=high --account=me"')
    return parser


def build_launcher(args: argparse.Namespace):
    """The launcher the options ask for; option mix-ups are errors."""
    slurm_only = [
        flag for flag, given in (('--partition', args.partition),
                                 ('--time', args.time),
                                 ('--slurm-args', args.slurm_args),
                                 ('--gpus-per-run',
                                  args.gpus_per_run is not None))
        if given
    ]
    if args.launcher == 'slurm':
        if args.gpus is not None:
            raise SweepError('--gpus is for --launcher local; with Slurm, '
                             'give each job its GPUs with --gpus-per-run.')
        if not args.partition:
            raise SweepError('--launcher slurm needs --partition P (`sinfo` '
                             'lists the partitions).')
        gpus_per_run = 1 if args.gpus_per_run is None else args.gpus_per_run
        return SlurmLauncher(args.partition, gpus_per_run, args.time,
                             shlex.split(args.slurm_args))
    if slurm_only:
        raise SweepError(f'{", ".join(slurm_only)} only go with --launcher '
                         'slurm.')
    return LocalLauncher(args.gpus)


def stop_on_sigterm(signum, frame):
    # A scheduler's SIGTERM stops the sweep as Ctrl-C does: the running
    # training is stopped too, and its state kept for the next sweep.
    raise KeyboardInterrupt


def main():
    args = get_args_parser().parse_args()
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    with exit_on_user_error():
        launcher = None if args.collect_only else build_launcher(args)
        sweep = Sweep(args.targets, args.work_root, args.cfg_options,
                      args.amp, args.seeds, launcher)
        try:
            failed = sweep.run(collect_only=args.collect_only)
        except KeyboardInterrupt:
            raise SystemExit(130)
    raise SystemExit(1 if failed else 0)


if __name__ == '__main__':
    main()
