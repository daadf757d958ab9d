"""The 5-class flower dataset, as ImageNet-style class folders or a list."""
import os
import os.path as osp
from typing import List, Optional, Union

from mmengine.fileio import list_from_file
from mmpretrain.datasets import CustomDataset
from mmpretrain.registry import DATASETS

from .auto_prepare import prepare_on_first_use
from .preparation import CLASSES as FLOWER_CLASSES

HOW_TO_GET_DATA = (
    'Lay the data out as <data_root>/train/<class>/*.jpg and '
    '<data_root>/val/<class>/*.jpg with the classes '
    f'{", ".join(FLOWER_CLASSES)}, or let flower-mm download and split it: '
    '`python tools/prepare_flowers.py` (see docs/data_preparation.md), or '
    'train with an empty or missing data root, which does the same on first '
    'use.')


class FlowerDataError(RuntimeError):
    """The flower data on disk is missing or not laid out as expected."""


@DATASETS.register_module()
class FlowerDataset(CustomDataset):
    """Daisy, dandelion, rose, sunflower and tulip photos.

    Reads ``<data_root>/<data_prefix>/<class>/<image>`` folders, or an
    annotation file of ``<class>/<image> <label>`` lines, as
    :class:`mmpretrain.datasets.CustomDataset` does, but checks the layout
    at build time, so a missing folder or class fails before any training
    with a message that says what was found and what was expected.

    Args:
        prepare (bool | str): ``'auto'`` downloads, verifies and splits the
            public archive into ``data_root`` when it holds no split yet, as
            MMPretrain's CIFAR and MNIST datasets download theirs; a split
            made by hand or by ``tools/prepare_flowers.py`` is used as it
            is. True also checks an existing split against
            ``prepare_source``; False never prepares. Defaults to 'auto'.
        prepare_source (str, optional): URL, archive or folder to prepare
            from. Defaults to the TensorFlow ``flower_photos.tgz`` URL.
        **kwargs: Passed to :class:`CustomDataset`.
    """

    METAINFO = {'classes': FLOWER_CLASSES}
    HOW_TO_GET_DATA = HOW_TO_GET_DATA

    def __init__(self,
                 data_root: str = '',
                 data_prefix='',
                 ann_file: str = '',
                 prepare: Union[bool, str] = 'auto',
                 prepare_source: Optional[str] = None,
                 **kwargs):
        prepare_on_first_use(data_root, prepare, prepare_source)
        super().__init__(
            data_root=data_root,
            data_prefix=data_prefix,
            ann_file=ann_file,
            **kwargs)

    def load_data_list(self) -> List[dict]:
        if not osp.isdir(self.data_root or '.'):
            raise FlowerDataError(
                f'Flower data root "{self.data_root}" does not exist. '
                + self.HOW_TO_GET_DATA)
        if self.ann_file:
            self._check_ann_file()
        else:
            self._check_class_folders()
        data_list = super().load_data_list()
        if not data_list:
            raise FlowerDataError(
                f'The split "{self.ann_file or self.img_prefix}" is empty: '
                f'it lists no images. ' + self.HOW_TO_GET_DATA)
        return data_list

    def _check_class_folders(self) -> None:
        split_dir = self.img_prefix
        if not osp.isdir(split_dir):
            raise FlowerDataError(
                f'Split folder "{split_dir}" does not exist. '
                + self.HOW_TO_GET_DATA)
        found = sorted(d for d in os.listdir(split_dir)
                       if osp.isdir(osp.join(split_dir, d)))
        missing = [c for c in self.CLASSES if c not in found]
        unexpected = [d for d in found if d not in self.CLASSES]
        if missing or unexpected:
            raise FlowerDataError(
                f'Split folder "{split_dir}" holds the class folders '
                f'{found}, expected exactly {list(self.CLASSES)}'
                + (f'; missing: {missing}' if missing else '')
                + (f'; unexpected: {unexpected}' if unexpected else '')
                + '. Rename or remove the folders. ' + self.HOW_TO_GET_DATA)
        empty = [
            c for c in self.CLASSES if not any(
                self.is_valid_file(f)
                for f in _list_files(osp.join(split_dir, c)))
        ]
        if empty:
            raise FlowerDataError(
                f'Split folder "{split_dir}" has no images '
                f'(extensions {", ".join(sorted(self.extensions))}) for the '
                f'classes {empty}; every class needs images in every split. '
                + self.HOW_TO_GET_DATA)

    def _find_samples(self):
        # CustomDataset numbers folders alphabetically; number them by
        # METAINFO instead, so labels never depend on what is on disk.
        folder_to_idx = {c: i for i, c in enumerate(self.CLASSES)}
        samples = []
        for cls_name, idx in folder_to_idx.items():
            cls_dir = osp.join(self.img_prefix, cls_name)
            samples += [(osp.join(cls_name, f), idx)
                        for f in sorted(_list_files(cls_dir))
                        if self.is_valid_file(f)]
        self.folder_to_idx = folder_to_idx
        return samples

    def _check_ann_file(self) -> None:
        if not osp.isfile(self.ann_file):
            raise FlowerDataError(
                f'Annotation file "{self.ann_file}" does not exist. '
                + self.HOW_TO_GET_DATA)
        num_classes = len(self.CLASSES)
        for line_no, line in enumerate(list_from_file(self.ann_file), 1):
            if not line.strip():
                continue
            parts = line.strip().rsplit(' ', 1)
            if len(parts) != 2 or not parts[1].isdigit() \
                    or int(parts[1]) >= num_classes:
                raise FlowerDataError(
                    f'{self.ann_file}, line {line_no}: expected '
                    f'"<image path> <label 0..{num_classes - 1}>", got '
                    f'"{line.strip()}".')


def _list_files(path: str) -> List[str]:
    """Files under ``path``, recursively, relative to it."""
    files = []
    for root, _, names in os.walk(path, followlinks=True):
        rel = osp.relpath(root, path)
        files += [n if rel == '.' else osp.join(rel, n) for n in names]
    return files
