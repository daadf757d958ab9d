"""The command lines of ``tools/train.py`` and ``tools/test.py``: their
arguments and how they merge into a config (the command line wins), as
MMPretrain's tools have them, importable by the benchmarks and the tests.
The tools themselves only parse, merge and run.
"""
import argparse
import os.path as osp


def add_run_arguments(parser: argparse.ArgumentParser,
                      cfg_options_help: str) -> None:
    """``--cfg-options``, ``--launcher`` and ``--local-rank``, which both
    tools take."""
    from mmengine.config import DictAction
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction, help=cfg_options_help)
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    # torch.distributed.launch passes --local-rank; torchrun sets LOCAL_RANK.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def merge_run_arguments(cfg, args: argparse.Namespace) -> None:
    """``--launcher`` and ``--work-dir`` into ``cfg``; the work dir defaults
    to the config's, else ``work_dirs/<config name>``."""
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])


def build_runner(cfg):
    """The Runner a config asks for (``runner_type``, e.g. FlowerRunner),
    else MMEngine's, as MMPretrain's tools build it."""
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    if 'runner_type' in cfg:
        return RUNNERS.build(cfg)
    return Runner.from_cfg(cfg)
