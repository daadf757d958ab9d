"""Turn a public flower archive into verified, reproducible train/val folders.

:func:`prepare_flowers` is the entry point; one module per step (download,
archive, verify, split with its manifest), none imports torch. The output
layout is described in ``docs/data_preparation.md``.
"""
from ..categories import FLOWER_CLASSES as CLASSES
from ..categories import normalise_class_name
from .common import (DEFAULT_OUT_DIR, DEFAULT_SEED, DEFAULT_SOURCE_URL,
                     DEFAULT_VAL_RATIO, PreparationError, sha256_file)
from .download import download_file
from .prepare import prepare_flowers
from .split import PreparationResult, is_prepared, val_count

__all__ = [
    'CLASSES', 'DEFAULT_SOURCE_URL', 'DEFAULT_OUT_DIR', 'DEFAULT_VAL_RATIO',
    'DEFAULT_SEED', 'PreparationError', 'PreparationResult', 'prepare_flowers',
    'download_file', 'normalise_class_name', 'is_prepared',
    'sha256_file', 'val_count'
]
