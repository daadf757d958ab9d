"""Train a classifier from a config: MMPretrain's `tools/train.py` interface.

    python tools/train.py configs/resnet50_flowers.py [--work-dir DIR]
        [--resume [CKPT]] [--amp] [--auto-scale-lr] [--tensorboard]
        [--cfg-options K=V ...] [--launcher {none,pytorch,slurm,mpi}]

The device is picked by MMEngine: the GPU when there is one, else the CPU.
"""
import os

from mmengine.config import Config

import flower_mm.registration  # noqa: F401  (also for old configs)
from flower_mm.cli import build_runner
from flower_mm.cli.train import get_args_parser, merge_args
from flower_mm.utils import exit_on_user_error


def main():
    args = get_args_parser().parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    # Bad configs, data and checkpoints end in one `error: ...` line.
    with exit_on_user_error():
        cfg = merge_args(Config.fromfile(args.config), args)
        build_runner(cfg).train()


if __name__ == '__main__':
    main()
