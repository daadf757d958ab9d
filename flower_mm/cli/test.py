"""``tools/test.py``'s arguments (MMPretrain's) and their merge into a
config."""
import argparse

from mmengine.config import Config

from ..utils import AMP_FLAG_HELP, merge_cfg_options
from . import add_run_arguments, merge_run_arguments


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
    add_run_arguments(parser,
                      'override config settings, as key=value pairs')
    return parser


def merge_args(cfg: Config, args: argparse.Namespace) -> Config:
    """Merge command-line arguments into the config (CLI wins)."""
    merge_run_arguments(cfg, args)
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
