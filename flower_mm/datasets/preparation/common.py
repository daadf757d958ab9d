"""What every step of the preparation shares: settings, errors, logging."""
import hashlib
import sys
from contextlib import contextmanager
from typing import Iterator, Optional, Union

from ...utils.user_errors import FlowerUserError

#: TensorFlow's flower_photos.tgz (3,670 images).
DEFAULT_SOURCE_URL = ('https://storage.googleapis.com/download.tensorflow.org/'
                      'example_images/flower_photos.tgz')
DEFAULT_OUT_DIR = 'data/flower_dataset'
DEFAULT_VAL_RATIO = 0.2
DEFAULT_SEED = 0
CHUNK = 1 << 20

Logger = Union[None, str, 'logging.Logger']  # noqa: F821


class PreparationError(FlowerUserError, RuntimeError):
    """The data could not be prepared; the message says why and what to do."""


def log(msg: str, logger: Logger = None) -> None:
    from mmengine.logging import print_log
    print_log(msg, logger=logger)


class _Bar:
    """MMEngine's progress bar on stderr, or nothing."""

    def __init__(self, bar) -> None:
        self._bar = bar

    def advance(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(n)


@contextmanager
def progress(enabled: bool, title: str, total: Optional[int]) -> Iterator:
    """A progress bar for ``total`` steps titled ``title`` (on stderr)."""
    if not enabled or not total:  # (a title alone for an unknown total)
        if enabled:
            print(title, file=sys.stderr, flush=True)
        yield _Bar(None)
        return
    from mmengine.utils import ProgressBar
    print(title, file=sys.stderr, flush=True)
    bar = ProgressBar(total, file=sys.stderr)
    yield _Bar(bar)
    sys.stderr.write('\n')


def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(CHUNK), b''):
            h.update(chunk)
    return h.hexdigest()


def ignored_reason(name: str) -> Optional[str]:
    """Why a file or folder name is not read at all (None: it is read)."""
    if name == '__MACOSX':
        return 'macOS metadata folder'
    if name.startswith('.'):
        return 'hidden file or folder'
    return None
