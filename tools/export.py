"""Export a trained checkpoint for deployment: TorchScript and/or ONNX.

    python tools/export.py CONFIG CHECKPOINT --format {torchscript,onnx}...
        [--out DIR] [--check-images IMAGE...] [--num-check-images N]
        [--tolerance T] [--cfg-options K=V ...]

Each export takes float32 RGB images [batch, 3, H, W] with values 0-255
(normalisation is inside) and returns softmax scores; its batch axis is
dynamic. It is loaded back and checked against PyTorch on real images, and
<export>.json next to it describes the preprocessing and the check.
Exit code: 0 on success, 1 when a check fails, 2 for usage errors.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmengine.config import Config, DictAction  # noqa: E402

from flower_mm.apis import collect_image_inputs  # noqa: E402
from flower_mm.deployment import (  # noqa: E402
    DEFAULT_TOLERANCE, EXPORT_FORMATS, ExportParityError, export_classifier)
from flower_mm.utils import exit_on_user_error, merge_cfg_options  # noqa: E402


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description='Export a checkpoint to TorchScript / ONNX')
    parser.add_argument('config', help='config the checkpoint was trained '
                        'with')
    parser.add_argument('checkpoint', help='checkpoint (.pth) from '
                        'tools/train.py')
    parser.add_argument(
        '--format',
        nargs='+',
        required=True,
        choices=list(EXPORT_FORMATS),
        help='one or both export formats')
    parser.add_argument(
        '--out', help='output folder; default: <checkpoint folder>/export')
    parser.add_argument(
        '--check-images',
        nargs='+',
        help='images, folders or globs to check the export on; default: '
        'the config\'s test dataset')
    parser.add_argument(
        '--num-check-images',
        type=int,
        default=8,
        help='test images to check on (default 8)')
    parser.add_argument(
        '--tolerance',
        type=float,
        default=DEFAULT_TOLERANCE,
        help='largest allowed |score difference| vs PyTorch '
        '(default %(default)g)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, as key=value pairs')
    return parser


def main() -> int:
    parser = get_args_parser()
    args = parser.parse_args()
    for name, path in (('config', args.config),
                       ('checkpoint', args.checkpoint)):
        if not osp.isfile(path):
            parser.error(f'{name} "{path}" does not exist')
    if args.num_check_images < 2:
        parser.error('--num-check-images must be at least 2 (the check runs '
                     'a batch larger than the traced one)')
    check_paths = None
    if args.check_images:
        items = collect_image_inputs(args.check_images)
        bad = [f'{p}: {e}' for p, e in items if e]
        if bad:
            parser.error('--check-images: ' + '; '.join(bad))
        check_paths = [p for p, _ in items]
    with exit_on_user_error():  # e.g. a typo in --cfg-options
        cfg = merge_cfg_options(
            Config.fromfile(args.config), args.cfg_options)
    out_dir = args.out or osp.join(
        osp.dirname(osp.abspath(args.checkpoint)), 'export')
    try:
        with exit_on_user_error():  # e.g. a checkpoint that would run code
            exported = export_classifier(
                cfg,
                args.checkpoint,
                args.format,
                out_dir,
                num_check_images=args.num_check_images,
                check_image_paths=check_paths,
                tolerance=args.tolerance)
    except ExportParityError as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    for meta in exported:
        file = osp.join(out_dir, meta['file'])
        parity = meta['parity']
        print(f'{meta["format"]}: {file} (+ .json); max |score difference| '
              f'{parity["max_abs_diff_scores"]:.2e} <= '
              f'{parity["tolerance"]:g} on {parity["num_images"]} images')
    return 0


if __name__ == '__main__':
    sys.exit(main())
