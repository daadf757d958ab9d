"""Export a trained checkpoint for deployment: TorchScript, ONNX, OpenVINO.

    python tools/export.py CONFIG CHECKPOINT
        --format {torchscript,onnx,onnx-int8,openvino,openvino-int8}...
        [--out DIR] [--check-images IMAGE...] [--num-check-images N]
        [--tolerance T] [--calib-images N | --calib-dir DIR]
        [--verify-images N] [--min-agreement FRACTION]
        [--cfg-options K=V ...]

Each export takes float32 RGB images [batch, 3, H, W] with values 0-255
(normalisation is inside) and returns softmax scores; its batch axis is
dynamic. It is loaded back and checked against PyTorch on real images, and
<export>.json next to it describes the preprocessing and the check.
``openvino`` is the OpenVINO IR (.xml + .bin) of the ONNX export, by
OpenVINO's own converter. ``onnx-int8`` (onnxruntime's quantizer) and
``openvino-int8`` (NNCF) are quantized statically to int8, calibrated on
training photos; their check is top-1 agreement with PyTorch float32 on
validation photos, at least --min-agreement.
Exit code: 0 on success, 1 when a check fails, 2 for usage errors.
"""
import argparse
import os.path as osp
import sys

from mmengine.config import Config

import flower_mm.registration  # noqa: F401  (also for old configs)
from flower_mm.apis import collect_image_inputs
from flower_mm.datasets import FlowerDataError
from flower_mm.deployment import (
    DEFAULT_CALIB_IMAGES, DEFAULT_MIN_AGREEMENT, DEFAULT_TOLERANCE,
    DEFAULT_VERIFY_IMAGES, EXPORT_FORMATS, ExportParityError,
    QuantizationAgreementError, export_classifier)
from flower_mm.utils import (add_checkpoint_arguments,
                             check_checkpoint_arguments, exit_on_user_error,
                             merge_cfg_options)


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description='Export a checkpoint to TorchScript / ONNX / OpenVINO')
    add_checkpoint_arguments(parser)
    parser.add_argument(
        '--format',
        nargs='+',
        required=True,
        choices=list(EXPORT_FORMATS),
        help='one or more export formats; openvino-int8 (NNCF) and '
        'onnx-int8 (onnxruntime) are quantized to int8; on CPUs with native '
        'bf16, openvino-int8 is the fastest (docs/speed.md)')
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
    calib = parser.add_mutually_exclusive_group()
    calib.add_argument(
        '--calib-images',
        type=int,
        default=DEFAULT_CALIB_IMAGES,
        help='int8: training photos (seeded choice) to calibrate the '
        'int8 ranges on (default %(default)d)')
    calib.add_argument(
        '--calib-dir',
        help='int8: calibrate on the images under this folder instead')
    parser.add_argument(
        '--verify-images',
        type=int,
        default=DEFAULT_VERIFY_IMAGES,
        help='int8: validation photos (seeded choice) to compare with '
        'PyTorch float32 on (default %(default)d, all if fewer)')
    parser.add_argument(
        '--min-agreement',
        type=float,
        default=DEFAULT_MIN_AGREEMENT,
        help='int8: fail when the top-1 class agrees with PyTorch '
        'float32 on fewer than this fraction of the validation photos '
        '(default %(default)g)')
    return parser


def main() -> int:
    parser = get_args_parser()
    args = parser.parse_args()
    check_checkpoint_arguments(parser, args)
    if args.num_check_images < 2:
        parser.error('--num-check-images must be at least 2 (the check runs '
                     'a batch larger than the traced one)')
    if args.calib_images < 1 or args.verify_images < 1:
        parser.error('--calib-images and --verify-images must be at least 1')
    if not 0 <= args.min_agreement <= 1:
        parser.error('--min-agreement is a fraction between 0 and 1, e.g. '
                     '0.99')
    def image_paths(option, inputs):
        if not inputs:
            return None
        items = collect_image_inputs(inputs)
        bad = [f'{p}: {e}' for p, e in items if e]
        if bad:
            parser.error(f'{option}: ' + '; '.join(bad))
        return [p for p, _ in items]

    calib_paths = image_paths('--calib-dir',
                              args.calib_dir and [args.calib_dir])
    check_paths = image_paths('--check-images', args.check_images)
    with exit_on_user_error():  # e.g. a typo in --cfg-options
        cfg = merge_cfg_options(
            Config.fromfile(args.config), args.cfg_options)
    out_dir = args.out or osp.join(
        osp.dirname(osp.abspath(args.checkpoint)), 'export')
    # e.g. an untrusted checkpoint: one error line
    with exit_on_user_error():
        try:
            exported = export_classifier(
                cfg,
                args.checkpoint,
                args.format,
                out_dir,
                num_check_images=args.num_check_images,
                check_image_paths=check_paths,
                tolerance=args.tolerance,
                calib_images=args.calib_images,
                calib_image_paths=calib_paths,
                verify_images=args.verify_images,
                min_agreement=args.min_agreement)
        except (ExportParityError, QuantizationAgreementError) as err:
            print(f'error: {err}', file=sys.stderr)
            return 1
        except FlowerDataError as err:
            if check_paths:
                raise
            sys.exit('error: the export is checked on images of the '
                     'config\'s test dataset, which cannot be read; pass '
                     'images to check it on instead: --check-images '
                     f'PHOTO_OR_FOLDER... ({err})')
    for meta in exported:
        file = osp.join(out_dir, meta['file'])
        if 'agreement' in meta:
            agreement = meta['agreement']
            print(f'{meta["format"]}: {file} (+ .json); top-1 agreement with '
                  f'PyTorch {100 * agreement["top1_agreement"]:.1f} % >= '
                  f'{100 * agreement["min_agreement"]:g} % on '
                  f'{agreement["num_images"]} validation images')
            continue
        parity = meta['parity']
        print(f'{meta["format"]}: {file} (+ .json); max |score difference| '
              f'{parity["max_abs_diff_scores"]:.2e} <= '
              f'{parity["tolerance"]:g} on {parity["num_images"]} images')
    return 0


if __name__ == '__main__':
    sys.exit(main())
