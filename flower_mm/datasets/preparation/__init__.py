"""Turn a public flower archive into verified, reproducible train/val folders.

The entry point is :func:`prepare_flowers`. It takes a URL, a local archive
(``.tgz``/``.tar``/``.zip``...) or an extracted folder with one sub-folder
per class, and writes::

    <out_dir>/
        train/<class>/<image>      val/<class>/<image>
        classes.txt                one class per line, label = line index
        train.txt  val.txt         "<class>/<image> <label>" lines
        manifest.json              source, its SHA-256, seed, ratio, counts,
                                   rejected and ignored files
        rejected.txt               the same report, readable
        downloads/                 downloaded archives (URL sources)
        extracted/<name>-<sha12>/  extracted archives; rejected files stay
                                   here, untouched

Nothing is written outside ``out_dir`` and nothing in the source is moved.
One module per step: download, archive, verify, split, manifest; none
imports torch. See ``docs/data_preparation.md``.
"""
from ..categories import CLASS_ALIASES, IMG_EXTENSIONS
from ..categories import FLOWER_CLASSES as CLASSES
from ..categories import normalise_class_name
from .archive import extract_archive
from .common import (DEFAULT_OUT_DIR, DEFAULT_SEED, DEFAULT_SOURCE_URL,
                     DEFAULT_VAL_RATIO, PreparationError, sha256_file)
from .download import download_file
from .manifest import PreparationResult, is_prepared
from .prepare import PrepareSettings, prepare_flowers
from .split import val_count

DEFAULT_URL = DEFAULT_SOURCE_URL

__all__ = [
    'CLASSES', 'CLASS_ALIASES', 'DEFAULT_SOURCE_URL', 'DEFAULT_URL',
    'DEFAULT_OUT_DIR', 'DEFAULT_VAL_RATIO', 'DEFAULT_SEED', 'IMG_EXTENSIONS',
    'PreparationError', 'PreparationResult', 'PrepareSettings',
    'prepare_flowers', 'download_file', 'extract_archive',
    'normalise_class_name', 'is_prepared', 'sha256_file', 'val_count'
]
