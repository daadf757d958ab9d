"""``tools/train.py``'s arguments (MMPretrain's) and their merge into a
config."""
import argparse

from mmengine.config import Config

from ..utils import AMP_FLAG_HELP, amp_flag_dtype, merge_cfg_options
from . import add_run_arguments, merge_run_arguments


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description='Train a model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from this checkpoint; without a value, from the latest '
        'checkpoint in the work dir')
    parser.add_argument(
        '--amp',
        action='store_true',
        help=f'train in {AMP_FLAG_HELP}')
    parser.add_argument(
        '--no-validate',
        action='store_true',
        help='do not evaluate checkpoints during training')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the learning rate by the actual batch size over '
        '`auto_scale_lr.base_batch_size`')
    parser.add_argument(
        '--tensorboard',
        action='store_true',
        help='also write TensorBoard event files next to '
        'vis_data/scalars.json (MMEngine\'s TensorboardVisBackend); view '
        'them with `tensorboard --logdir work_dirs`')
    add_run_arguments(
        parser, 'override config settings, as key=value pairs, e.g. '
        'train_dataloader.batch_size=16 "model.head.topk=(1,)"')
    return parser


def merge_args(cfg: Config, args: argparse.Namespace) -> Config:
    """Merge command-line arguments into the config (CLI wins)."""
    if args.no_validate:
        cfg.val_cfg = None
        cfg.val_dataloader = None
        cfg.val_evaluator = None

    merge_run_arguments(cfg, args)

    if args.amp:
        # MMEngine's AmpOptimWrapper, which also runs bf16 on the CPU.
        cfg.optim_wrapper.type = 'DeviceAmpOptimWrapper'
        cfg.optim_wrapper.dtype = amp_flag_dtype()
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')

    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume

    if args.auto_scale_lr:
        cfg.auto_scale_lr.enable = True

    if args.tensorboard:
        backends = cfg.visualizer.setdefault('vis_backends', [])
        if not any(b.get('type') == 'TensorboardVisBackend'
                   for b in backends):
            backends.append(dict(type='TensorboardVisBackend'))

    # Typos that MMEngine would silently add as unused keys are errors.
    return merge_cfg_options(cfg, args.cfg_options)
