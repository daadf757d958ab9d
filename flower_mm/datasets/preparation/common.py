"""What the preparation steps share: defaults, the error, logging, hashing."""
import hashlib
import sys
from typing import Iterable, Optional

from ...utils.user_errors import FlowerUserError

#: TensorFlow's flower_photos.tgz (3,670 images).
DEFAULT_SOURCE_URL = ('https://storage.googleapis.com/download.tensorflow.org/'
                      'example_images/flower_photos.tgz')
DEFAULT_OUT_DIR = 'data/flower_dataset'
DEFAULT_VAL_RATIO = 0.2
DEFAULT_SEED = 0
CHUNK = 1 << 20


class PreparationError(FlowerUserError, RuntimeError):
    """The data could not be prepared; the message says why and what to do."""


def by_hand(name: str, out_dir=None) -> str:
    """How to get the data without our download."""
    out = '' if out_dir is None else f' --out {out_dir}'
    return ('Download it by hand (e.g. in a browser) and pass the file: '
            f'python tools/prepare_flowers.py /path/to/{name}{out}')


def log(msg: str, logger=None) -> None:
    from mmengine.logging import print_log
    print_log(msg, logger=logger)


def progress(items: Iterable, enabled: bool, title: str,
             total: Optional[int]) -> Iterable:
    """``items``, counted by MMEngine's progress bar on stderr if enabled
    (a title alone for an unknown ``total``)."""
    if enabled:
        print(title, file=sys.stderr, flush=True)
    if not (enabled and total):
        return items
    from mmengine.utils import track_iter_progress
    return track_iter_progress((items, total), file=sys.stderr)


def sha256_file(path) -> str:
    with open(path, 'rb') as f:
        return hashlib.file_digest(f, 'sha256').hexdigest()


def ignored_reason(name: str) -> Optional[str]:
    """Why a file or folder name is never read (None: it is read)."""
    if name == '__MACOSX':
        return 'macOS metadata folder'
    return 'hidden file or folder' if name.startswith('.') else None
