"""Train the report's experiments, or any configs, one after another.

    python tools/sweep.py {table1,table2,table3,all | CONFIG ...}
        [--work-root DIR] [--cfg-options K=V ...] [--amp] [--collect-only]

Each config trains with tools/train.py into <work-root>/<config name>. Run
the same command again after an interruption: finished runs are skipped and
the interrupted one resumes from its latest checkpoint. The best and final
val top-1 of every run, beside the report's figures, go to
<work-root>/results.md, results.csv and results.png.
"""
import argparse
import signal

from flower_mm.experiments import EXPERIMENTS, Sweep
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
        help='each run trains into WORK_ROOT/<config name>; the results '
        'tables go to WORK_ROOT (default: %(default)s)')
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
    return parser


def stop_on_sigterm(signum, frame):
    # A scheduler's SIGTERM stops the sweep as Ctrl-C does: the running
    # training is stopped too, and its state kept for the next sweep.
    raise KeyboardInterrupt


def main():
    args = get_args_parser().parse_args()
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    with exit_on_user_error():
        sweep = Sweep(args.targets, args.work_root, args.cfg_options, args.amp)
    try:
        failed = sweep.run(collect_only=args.collect_only)
    except KeyboardInterrupt:
        raise SystemExit(130)
    raise SystemExit(1 if failed else 0)


if __name__ == '__main__':
    main()
