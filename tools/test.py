"""Evaluate a checkpoint: MMPretrain's `tools/test.py` interface.

    python tools/test.py configs/resnet50_flowers.py CHECKPOINT|MODEL.onnx
        [--work-dir DIR] [--out FILE.pkl] [--out-item {metrics,pred}] [--amp]
        [--cfg-options K=V ...] [--launcher {none,pytorch,slurm,mpi}]

An ``.onnx`` file from ``tools/export.py`` (float32 or int8) in place of the
checkpoint replaces the config's model with an ``OnnxClassifier`` running it
on onnxruntime; the test loop, metrics and report are the same.

With the flower configs it also logs a per-class table (precision, recall,
F1, support, confusion matrix) and writes classification_report.json,
confusion_matrix.png, misclassified.png and misclassified.csv into the work
dir (ClassificationReportHook).
"""
import os
import os.path as osp
import sys

import mmengine
from mmengine.config import Config
from mmengine.evaluator import DumpResults

import flower_mm.registration  # noqa: F401  (also for old configs)
from flower_mm.cli import build_runner
from flower_mm.cli.test import get_args_parser, merge_args
from flower_mm.utils import exit_on_user_error


def main():
    args = get_args_parser().parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    if not args.checkpoint.startswith(('http://', 'https://')) \
            and not osp.isfile(args.checkpoint):
        sys.exit(f'error: checkpoint "{args.checkpoint}" does not exist; '
                 'pass a .pth file written by tools/train.py, e.g. '
                 'work_dirs/<config name>/best_accuracy_top1_epoch_<N>.pth')
    if args.amp and args.checkpoint.endswith('.onnx'):
        sys.exit('error: --amp applies to PyTorch checkpoints; an ONNX '
                 'model runs at the precision it was exported in.')
    if args.out is not None and args.out_item == 'pred' \
            and not args.out.endswith(('.pkl', '.pickle')):
        sys.exit(f'error: --out "{args.out}" must be a .pkl file.')

    # Bad configs, data and checkpoints end in one `error: ...` line.
    with exit_on_user_error():
        cfg = merge_args(Config.fromfile(args.config), args)
        runner = build_runner(cfg)

        if args.out and args.out_item == 'pred':
            runner.test_evaluator.metrics.append(
                DumpResults(out_file_path=args.out))
        metrics = runner.test()
    if args.out and args.out_item == 'metrics':
        mmengine.dump(metrics, args.out)


if __name__ == '__main__':
    main()
