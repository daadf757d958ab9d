"""``tools/test.py``'s arguments (MMPretrain's) and their merge into a
config."""
import argparse

from mmengine.config import Config

from ..apis import (check_export_fits_config, choose_backend,
                    export_float_precision, is_export, log_backend)
from ..deployment import read_export_description
from ..utils import AMP_FLAG_HELP, merge_cfg_options
from . import add_run_arguments, merge_run_arguments
from .backend import add_backend_argument


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description='Test (and evaluate) a checkpoint')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file, or a model '
                        'from tools/export.py (.onnx, .xml, or its folder)')
    add_backend_argument(parser)
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
    export = is_export(args.checkpoint)
    if not export:
        # A runtime backend needs an export; a compiled one a compiler.
        choose_backend(args.checkpoint, args.backend)
        cfg.load_from = args.checkpoint
        # FlowerRunner compiles the forward as `compile` says; 'auto' (the
        # flower configs) decides by the size of the test set.
        if args.backend != 'auto':
            cfg.compile = args.backend == 'pytorch-compiled'
    if args.amp:
        # MMEngine's TestLoop(fp16=True), bf16 on a CPU, fp32 predictions.
        cfg.test_cfg = dict(cfg.get('test_cfg') or {}, type='AmpTestLoop',
                            fp16=True)
    options = dict(args.cfg_options or {})
    # An export's own options (model.num_threads=N) apply to it, after it
    # has replaced the network.
    model_options = {key: options.pop(key) for key in list(options)
                     if export and key.startswith('model.')}
    # Typos that MMEngine would silently add as unused keys are errors.
    cfg = merge_cfg_options(cfg, options)
    if export:
        cfg = merge_cfg_options(use_export(cfg, args), model_options)
    return cfg


def use_export(cfg: Config, args: argparse.Namespace) -> Config:
    """The export (``args.checkpoint``) in place of the config's network,
    on the backend ``args.backend`` names or ``auto`` picks; its float
    layers at the config's test precision."""
    choice = choose_backend(args.checkpoint, args.backend, 'cpu')
    check_export_fits_config(cfg, read_export_description(choice.model_file),
                             choice.model_file)
    # The export replaces the network; data, evaluator and hooks stay.
    cfg.model = dict(type='ExportedClassifier', model_file=choice.model_file,
                     runtime=choice.backend,
                     float_precision=export_float_precision(cfg))
    # The export normalises inside; the Runner would otherwise hand the
    # model the config's normalising data_preprocessor.
    cfg.data_preprocessor = None
    cfg.load_from = None
    cfg.compile = False
    log_backend(choice.backend, choice.model_file, choice.reason)
    return cfg
