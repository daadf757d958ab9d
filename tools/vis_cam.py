"""Show where the model looks: class activation maps (Grad-CAM and kin).

    python tools/vis_cam.py CONFIG CHECKPOINT INPUT... --out DIR
        [--method gradcam|gradcam++|xgradcam|eigencam|layercam]
        [--target-layers backbone.layer4 ...] [--target-category N|NAME]
        [--aug-smooth] [--eigen-smooth] [--device DEVICE]
        [--backend auto|pytorch] [--cfg-options K=V ...]

INPUT is an image, a folder (searched recursively) or a quoted glob. Writes
DIR/<image name>_cam.png per image: the photo as the model sees it (after
the test pipeline's resize and crop), the heat map over it, and the
predicted class with its score. The flags are those of MMPretrain's
tools/visualization/vis_cam.py. The maps need the PyTorch model's
gradients: ``--backend`` takes the values of the other tools, but only
``auto`` and ``pytorch`` (eager) explain. Exit code 1 when some image could
not be read, 2 for usage errors.
"""
import argparse
import os.path as osp
import sys

from mmengine.config import Config
from mmengine.utils import track_iter_progress

import flower_mm.registration  # noqa: F401  (also for old configs)
from flower_mm.apis import (CAM_METHODS, collect_image_inputs, compute_cam,
                            load_predictor, resolve_target_category,
                            resolve_target_layers)
from flower_mm.cli.backend import add_backend_argument
from flower_mm.transforms import ImageDecodeError
from flower_mm.utils import (add_checkpoint_arguments,
                             check_checkpoint_arguments, exit_on_user_error,
                             merge_cfg_options)
from flower_mm.visualization import plot_cam


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description='Visualize class activation maps (CAM) of images')
    add_checkpoint_arguments(parser, inputs=True)
    parser.add_argument(
        '--out', required=True, help='folder for the PNGs (one per image)')
    parser.add_argument(
        '--method',
        default='gradcam',
        type=str.lower,
        choices=list(CAM_METHODS),
        help='CAM method (default gradcam)')
    parser.add_argument(
        '--target-layers',
        nargs='+',
        help='layers to explain, as named in model.named_modules(), e.g. '
        'backbone.layer4.2; default: the last ResNet stage, the last '
        'DenseNet block')
    parser.add_argument(
        '--target-category',
        help='class index or name to explain; default: each image\'s '
        'predicted class')
    parser.add_argument(
        '--aug-smooth',
        action='store_true',
        help='average over test-time augmentations (smoother, 6x slower)')
    parser.add_argument(
        '--eigen-smooth',
        action='store_true',
        help='keep the first principal component of the weighted '
        'activations (less noise)')
    parser.add_argument(
        '--device', help='e.g. cuda:0 or cpu; default: the GPU if any')
    add_backend_argument(parser, ' (heat maps need gradients: auto and '
                         'pytorch only)')
    return parser


def output_names(paths, out_dir):
    """<stem>_cam.png per path; a repeated stem gets _2, _3..."""
    names, used = [], set()
    for path in paths:
        stem = osp.splitext(osp.basename(path))[0]
        name, n = f'{stem}_cam.png', 2
        while name in used:
            name, n = f'{stem}_{n}_cam.png', n + 1
        used.add(name)
        names.append(osp.join(out_dir, name))
    return names


def main() -> int:
    parser = get_args_parser()
    args = parser.parse_args()
    check_checkpoint_arguments(parser, args)

    items = collect_image_inputs(args.inputs)
    failed = [(path, error) for path, error in items if error]
    paths = [path for path, error in items if not error]
    # Bad --cfg-options, --target-layers or --target-category: one line.
    with exit_on_user_error():
        cfg = merge_cfg_options(Config.fromfile(args.config), args.cfg_options)
        classifier = load_predictor(cfg, args.checkpoint, args.backend,
                                    args.device, explain=True)
        resolve_target_layers(classifier.model, args.target_layers)
        resolve_target_category(args.target_category, classifier.classes)

    written = []
    for path, out_file in track_iter_progress(
            list(zip(paths, output_names(paths, args.out))),
            file=sys.stderr):
        try:
            [result] = compute_cam(
                classifier, [path],
                method=args.method,
                target_layers=args.target_layers,
                target_category=args.target_category,
                aug_smooth=args.aug_smooth,
                eigen_smooth=args.eigen_smooth)
        except ImageDecodeError as err:
            failed.append((path, str(err)))
            continue
        written.append(
            plot_cam(result, out_file, osp.basename(path), args.method))
        print(f'{path}: {result["pred_class"]} '
              f'{result["pred_score"]:.4f} -> {out_file}')
    print(f'{len(written)} CAM images written to {args.out}')
    for path, error in failed:
        print(f'  {path}: {error}', file=sys.stderr)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
