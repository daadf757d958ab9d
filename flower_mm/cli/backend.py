"""``--backend``: the same option, values and default in every tool that
runs a model (infer, test, serve, vis_cam)."""
import argparse

from ..apis import BACKEND_HELP, BACKENDS


def add_backend_argument(parser: argparse.ArgumentParser,
                         extra_help: str = '') -> None:
    parser.add_argument(
        '--backend', default='auto', choices=BACKENDS,
        help=BACKEND_HELP + extra_help + '; default: auto')
