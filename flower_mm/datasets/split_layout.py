"""A split on disk: what ``tools/prepare_flowers.py`` writes and the
datasets read, named and parsed in this one place.

::

    <root>/train/<class>/<image>     <root>/val/<class>/<image>
    <root>/classes.txt               one class a line, in label order
    <root>/train.txt, val.txt        "<class>/<image> <label>" lines,
                                     relative to train/ and val/
    <root>/manifest.json             written last, once every image is in

The lists are in the annotation format of MMPretrain's ``CustomDataset``
(``ann_file='train.txt', data_prefix='train'``). Torch-free.
"""
import os.path as osp
from typing import List, Optional, Tuple

from ..utils.user_errors import FlowerUserError

__all__ = [
    'CLASSES_FILE', 'FlowerDataError', 'MANIFEST_NAME', 'SPLITS',
    'SPLIT_MARKERS', 'format_list_line', 'list_file', 'read_split_list'
]

SPLITS = ('train', 'val')
CLASSES_FILE = 'classes.txt'
#: Written by the preparation last, after every image of the split.
MANIFEST_NAME = 'manifest.json'


def list_file(split: str) -> str:
    """The list of a split's images: ``train`` -> ``train.txt``."""
    return f'{split}.txt'


#: What a split, hand-made or prepared, has at its root; downloads/,
#: extracted/ and the lock of an interrupted preparation are not a split.
SPLIT_MARKERS = (*SPLITS, *map(list_file, SPLITS), CLASSES_FILE,
                 MANIFEST_NAME)


class FlowerDataError(FlowerUserError, RuntimeError):
    """The data on disk is missing or not laid out as expected."""


def format_list_line(image: str, label: int) -> str:
    """One line of a split list: ``<class>/<image> <label>``."""
    return f'{image} {label}'


def read_split_list(path: str,
                    num_classes: Optional[int] = None) -> List[Tuple[str,
                                                                     int]]:
    """``(image path, label)`` for each line of a split list; blank lines
    are skipped.

    Raises:
        FlowerDataError: naming the file and the line that is not
            ``<image path> <label>`` (with a label below ``num_classes``).
        OSError: the file cannot be read.
    """
    entries = []
    with open(path, encoding='utf-8') as f:
        for line_no, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            image, _, label = line.rpartition(' ')
            if not image or not label.isdigit() or (
                    num_classes is not None and int(label) >= num_classes):
                labels = '<label>' if num_classes is None else \
                    f'<label 0..{num_classes - 1}>'
                raise FlowerDataError(
                    f'{path}, line {line_no}: expected "<image path> '
                    f'{labels}", got "{line}".')
            entries.append((osp.normpath(image), int(label)))
    return entries
