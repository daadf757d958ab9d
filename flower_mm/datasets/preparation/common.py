"""What the preparation steps share: defaults, the error, logging, hashing,
the names never read."""
import hashlib
import os
import sys
from pathlib import Path
from typing import Iterable, Optional

from ...utils.user_errors import FlowerUserError

#: TensorFlow's flower_photos.tgz (3,670 images).
DEFAULT_SOURCE_URL = ('https://storage.googleapis.com/download.tensorflow.org/'
                      'example_images/flower_photos.tgz')
DEFAULT_OUT_DIR = 'data/flower_dataset'
DEFAULT_VAL_RATIO = 0.2
DEFAULT_SEED = 0


class PreparationError(FlowerUserError, RuntimeError):
    """The data could not be prepared; the message says why and what to do."""


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


def sha256_tree(folder: Path) -> str:
    """SHA-256 over the sorted "<relative path>\\0<sha256>\\n" of a folder's
    files, leaving out what is never read (hidden files, ``__MACOSX``)."""
    files = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if not ignored_reason(d)]
        files += [
            (os.fsencode(Path(dirpath, n).relative_to(folder).as_posix()),
             Path(dirpath, n)) for n in filenames if not ignored_reason(n)
        ]
    h = hashlib.sha256()
    for key, path in sorted(files):
        try:
            h.update(key + b'\0' + sha256_file(path).encode() + b'\n')
        except OSError:
            h.update(key + b'\0unreadable\n')
    return h.hexdigest()
