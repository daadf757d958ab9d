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
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import mmengine  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.evaluator import DumpResults  # noqa: E402
from mmengine.registry import RUNNERS  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

import flower_mm.registration  # noqa: E402,F401  (also for old configs)
from flower_mm.utils import (AMP_FLAG_HELP, exit_on_user_error,  # noqa: E402
                             merge_cfg_options)


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description='Test (and evaluate) a checkpoint')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file, or a model '
                        '(.onnx) from tools/export.py')
    parser.add_argument(
        '--work-dir', help='the dir to save the evaluation metrics and logs')
    parser.add_argument(
        '--out', help='dump predictions (or metrics) to this .pkl file')
    parser.add_argument(
        '--out-item',
        choices=['metrics', 'pred'],
        default='pred',
        help='what --out holds (default: predictions)')
    parser.add_argument(
        '--amp',
        action='store_true',
        help=f'infer in {AMP_FLAG_HELP}')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, as key=value pairs')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    return parser


def merge_args(cfg: Config, args: argparse.Namespace) -> Config:
    """Merge command-line arguments into the config (CLI wins)."""
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    if args.checkpoint.endswith('.onnx'):
        # The export replaces the network; data, evaluator and hooks stay.
        cfg.model = dict(type='OnnxClassifier', onnx_file=args.checkpoint)
        # The export normalises inside; the Runner would otherwise hand the
        # model the config's normalising data_preprocessor.
        cfg.data_preprocessor = None
        cfg.load_from = None
    else:
        cfg.load_from = args.checkpoint
    if args.amp:
        # MMEngine's TestLoop(fp16=True), bf16 on a CPU, fp32 predictions.
        cfg.test_cfg = dict(cfg.get('test_cfg') or {}, type='AmpTestLoop',
                            fp16=True)
    # Typos that MMEngine would silently add as unused keys are errors.
    return merge_cfg_options(cfg, args.cfg_options)


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
        if 'runner_type' in cfg:
            runner = RUNNERS.build(cfg)
        else:
            runner = Runner.from_cfg(cfg)

        if args.out and args.out_item == 'pred':
            runner.test_evaluator.metrics.append(
                DumpResults(out_file_path=args.out))
        metrics = runner.test()
    if args.out and args.out_item == 'metrics':
        mmengine.dump(metrics, args.out)


if __name__ == '__main__':
    main()
