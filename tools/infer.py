"""Classify your own photos with a trained checkpoint or its export.

    python tools/infer.py CONFIG CHECKPOINT|EXPORT INPUT...
        [--backend auto|pytorch|pytorch-compiled|onnxruntime|openvino]
        [--out FILE.csv|FILE.json] [--topk K] [--batch-size B]
        [--device DEVICE] [--cfg-options K=V ...]

An export of ``tools/export.py`` (``.onnx`` or OpenVINO ``.xml``, float32 or
int8, or the folder it wrote) in place of the checkpoint runs on
onnxruntime or OpenVINO (CPU), preprocessed as the JSON next to it says;
the output is the same. ``--backend auto`` picks the fastest backend the
model file and this machine allow for the number of photos
(docs/speed.md); the log says which.

INPUT is an image, a folder (searched recursively) or a quoted glob such as
"photos/**/*.jpg". Prints the top-k classes with their scores per image.
Exit code: 0 when every image was classified, 1 when some could not be
read (they are listed with the reason), 2 for usage errors.
"""
import argparse
import sys

from mmengine.config import Config

import flower_mm.registration  # noqa: F401  (also for old configs)
from flower_mm.apis import (OUTPUT_FORMATS, collect_image_inputs,
                            load_predictor, predictions_table,
                            write_predictions)
from flower_mm.cli.backend import add_backend_argument
from flower_mm.utils import (add_checkpoint_arguments,
                             check_checkpoint_arguments, exit_on_user_error,
                             format_table, merge_cfg_options)


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description='Predict the top-k classes of images')
    add_checkpoint_arguments(parser, inputs=True, exports=True)
    add_backend_argument(parser)
    parser.add_argument(
        '--out', help='also write the predictions to this .csv or .json')
    parser.add_argument(
        '--topk', type=int, default=3, help='classes per image (default 3)')
    parser.add_argument(
        '--batch-size', type=int, default=16, help='images per forward pass')
    parser.add_argument(
        '--device', help='e.g. cuda:0 or cpu; default: the GPU if any')
    parser.add_argument(
        '--no-progress', action='store_true', help='hide the progress bar')
    return parser


def main() -> int:
    parser = get_args_parser()
    args = parser.parse_args()
    check_checkpoint_arguments(parser, args, exports=True)
    if args.out and not args.out.lower().endswith(OUTPUT_FORMATS):
        parser.error(f'--out "{args.out}" must end in .csv or .json')
    if args.topk < 1 or args.batch_size < 1:
        parser.error('--topk and --batch-size must be at least 1')

    items = collect_image_inputs(args.inputs)
    # e.g. a typo in --cfg-options, a checkpoint that would run code
    with exit_on_user_error():
        cfg = merge_cfg_options(
            Config.fromfile(args.config), args.cfg_options)
        classifier = load_predictor(
            cfg, args.checkpoint, args.backend, args.device,
            num_images=sum(error is None for _, error in items))
    topk = min(args.topk, len(classifier.classes))
    results = classifier.predict(
        items, topk, args.batch_size, progress=not args.no_progress)

    headers, rows = predictions_table(results, topk)
    print(format_table(headers, rows, align_right_from=len(headers)))
    if args.out:
        write_predictions(results, args.out, topk)
        print(f'Predictions written to {args.out}')
    failed = [r for r in results if r['error']]
    print(f'{len(results) - len(failed)} of {len(results)} images '
          f'classified on {classifier.device} with '
          f'{classifier.describe()}.')
    if failed:
        print(f'{len(failed)} could not be classified:', file=sys.stderr)
        for r in failed:
            print(f'  {r["path"]}: {r["error"]}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
