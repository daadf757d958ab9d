"""Download, verify and split the flower photos into train/val folders.

    python tools/prepare_flowers.py [SOURCE] [--out DIR] [--val-ratio R]
                                    [--seed S] [--force]

SOURCE is a URL, a .tgz/.tar/.zip archive or an extracted folder; it
defaults to TensorFlow's flower_photos.tgz. See docs/data_preparation.md.
Exit status: 0 when the split was written or already there (rejected files
are listed in <out>/rejected.txt), 1 on errors, 2 on bad arguments.
"""
import argparse
import sys

from flower_mm.datasets.preparation import (
    DEFAULT_OUT_DIR, DEFAULT_SEED, DEFAULT_SOURCE_URL, DEFAULT_VAL_RATIO,
    prepare_flowers)
from flower_mm.utils.table import format_table
from flower_mm.utils.user_errors import exit_on_user_error


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Download, verify and split the 5-class flower photos '
        'into <out>/{train,val}/<class>/ with classes.txt, train.txt, '
        'val.txt, manifest.json and a rejected.txt report.')
    parser.add_argument(
        'source',
        nargs='?',
        default=None,
        metavar='SOURCE',
        help='URL, .tgz/.tar/.zip archive or extracted folder (default: '
        f'{DEFAULT_SOURCE_URL}; without SOURCE an existing split in --out is '
        'kept whatever it was made from)')
    parser.add_argument(
        '--out',
        default=DEFAULT_OUT_DIR,
        help=f'output folder (default: {DEFAULT_OUT_DIR})')
    parser.add_argument(
        '--val-ratio',
        type=float,
        default=DEFAULT_VAL_RATIO,
        help='share of each class that goes to val, between 0 and 1 '
        f'(default: {DEFAULT_VAL_RATIO})')
    parser.add_argument(
        '--seed',
        type=int,
        default=DEFAULT_SEED,
        help=f'seed of the split (default: {DEFAULT_SEED})')
    parser.add_argument(
        '--force',
        action='store_true',
        help='rebuild the split even over one made with another seed, ratio '
        'or source')
    parser.add_argument(
        '--no-progress', action='store_true', help='do not show progress bars')
    parser.add_argument(
        '--workers',
        type=int,
        default=None,
        help='threads that decode images (default: up to 8)')
    return parser.parse_args(argv)


def summary(result) -> str:
    """A per-class table of train/val/rejected counts."""
    rejected = {c: 0 for c in result.classes}
    for item in result.rejected:
        if item.get('class') in rejected:
            rejected[item['class']] += 1
    rows = [(c, result.counts['train'].get(c, 0),
             result.counts['val'].get(c, 0), rejected[c])
            for c in result.classes]
    other = len(result.rejected) - sum(rejected.values())
    if other:
        rows.append(('(archive)', '', '', other))
    rows.append(('total', sum(result.counts['train'].values()),
                 sum(result.counts['val'].values()), len(result.rejected)))
    return format_table(('class', 'train', 'val', 'rejected'), rows)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        with exit_on_user_error():
            result = prepare_flowers(
                args.source,
                out_dir=args.out,
                val_ratio=args.val_ratio,
                seed=args.seed,
                force=args.force,
                progress=not args.no_progress,
                workers=args.workers)
    except KeyboardInterrupt:
        print('error: interrupted; no split was written', file=sys.stderr)
        return 130
    print()
    print(summary(result))
    print()
    state = ('Already prepared'
             if result.already_prepared else 'Split written')
    print(f'{state}: {result.out_dir} (seed {result.seed}, val ratio '
          f'{result.val_ratio}, source sha256 {result.source_sha256})')
    print(f'Report: {result.report_path} ({len(result.rejected)} rejected, '
          f'{len(result.ignored)} ignored)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
