"""Report the user's mistakes as one line, not a traceback."""
import os
import sys
from contextlib import contextmanager


def user_error_types() -> tuple:
    """flower-mm's errors for bad input: configs, data, checkpoints."""
    from ..compat import UnsafeCheckpointError
    from ..datasets.flower_dataset import FlowerDataError
    from ..deployment.onnx_model import OnnxModelError
    from ..engine.hooks.pretrained_weights_check_hook import \
        PretrainedWeightsError
    from .config_checks import ConfigError
    return (ConfigError, FlowerDataError, OnnxModelError,
            PretrainedWeightsError, UnsafeCheckpointError)


@contextmanager
def exit_on_user_error():
    """Exit with ``error: <message>`` on stderr (status 1) where the block
    raises one of :func:`user_error_types`; other errors keep their
    traceback. ``FLOWER_MM_DEBUG=1`` keeps it for these too."""
    try:
        yield
    except user_error_types() as err:
        if os.environ.get('FLOWER_MM_DEBUG', '0') not in ('', '0'):
            raise
        sys.exit(f'error: {err}')
