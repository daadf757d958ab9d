"""Arguments the tools that load a trained checkpoint share."""
import argparse
import os.path as osp

from mmengine.config import DictAction


def add_checkpoint_arguments(parser: argparse.ArgumentParser,
                             inputs: bool = False,
                             exports: bool = False) -> None:
    """CONFIG CHECKPOINT [INPUT...] and --cfg-options, as infer, export,
    serve and vis_cam take them; ``exports``: the tool also takes a model
    of tools/export.py (a file or its folder)."""
    parser.add_argument('config', help='config the checkpoint was trained '
                        'with, e.g. configs/resnet50_flowers.py')
    parser.add_argument(
        'checkpoint',
        help='checkpoint (.pth) from tools/train.py' +
        (', or a model from tools/export.py (.onnx, .xml, float32 or int8, '
         'or the folder it wrote)' if exports else ''))
    if inputs:
        parser.add_argument(
            'inputs', nargs='+', help='image files, folders or glob patterns')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, as key=value pairs, e.g. '
        'test_dataloader.dataset.pipeline.1.scale=288')


def check_checkpoint_arguments(parser: argparse.ArgumentParser,
                               args: argparse.Namespace,
                               exports: bool = False) -> None:
    """Exit with a usage error (status 2) naming a missing config or
    checkpoint (``exports``: or export folder)."""
    for name, path in (('config', args.config),
                       ('checkpoint', args.checkpoint)):
        if not (osp.isfile(path) or
                (exports and name == 'checkpoint' and osp.isdir(path))):
            parser.error(f'{name} "{path}" does not exist')
