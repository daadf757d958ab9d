"""Plot training curves (loss, learning rate, val top-1 per epoch) to PNG.

    python tools/plot_curves.py WORK_DIR_OR_SCALARS_JSON... [--out FILE.png]
        [--keys loss lr accuracy/top1] [--labels NAME...]

Give several work dirs to compare runs on one plot. Reads MMEngine's
``<work_dir>/<timestamp>/vis_data/scalars.json`` (all timestamps of a work
dir, so resumed runs stay one curve).
"""
import argparse
import os.path as osp
import sys

from flower_mm.visualization import (
    DEFAULT_KEYS, ScalarsNotFoundError, load_runs, plot_training_curves)


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description='Plot per-epoch training curves of one or more runs')
    parser.add_argument(
        'runs',
        nargs='+',
        help='work dirs (e.g. work_dirs/resnet50_flowers), timestamp dirs or '
        'vis_data/scalars.json files')
    parser.add_argument(
        '--out',
        help='PNG to write; default: <work dir>/training_curves.png for one '
        'run, ./training_curves.png for several')
    parser.add_argument(
        '--keys',
        nargs='+',
        default=list(DEFAULT_KEYS),
        help='logged values to plot, one panel each (default: %(default)s)')
    parser.add_argument(
        '--labels', nargs='+', help='legend names, one per run')
    return parser


def main():
    args = get_args_parser().parse_args()
    out = args.out
    if out is None:
        one_dir = len(args.runs) == 1 and osp.isdir(args.runs[0])
        out = osp.join(args.runs[0] if one_dir else '.',
                       'training_curves.png')
    try:
        runs = load_runs(args.runs, args.labels)
        plot_training_curves(runs, out, args.keys)
    except (ScalarsNotFoundError, KeyError, ValueError) as err:
        sys.exit(f'error: {err.args[0] if err.args else err}')
    for name, run in runs.items():
        epochs = max((len(xs) for xs, _ in run['curves'].values()), default=0)
        print(f'{name}: {epochs} {run["x_label"]}s')
    print(f'Training curves written to {out}')


if __name__ == '__main__':
    main()
