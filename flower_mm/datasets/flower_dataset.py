"""The 5-class flower dataset, as ImageNet-style class folders or a list."""
import logging
import os
import os.path as osp
from collections import Counter
from typing import Dict, List, Optional, Union

from mmengine.dist import barrier, get_rank, is_distributed
from mmengine.fileio import list_from_file
from mmengine.logging import MMLogger, print_log
from mmpretrain.datasets import CustomDataset
from mmpretrain.registry import DATASETS

from ..utils.user_errors import FlowerUserError
from .auto_prepare import prepare_on_first_use
from .categories import FLOWER_CLASSES
from .image_check import ImageCheckResult, find_broken_images

HOW_TO_GET_DATA = (
    'Lay the data out as <data_root>/train/<class>/*.jpg and '
    '<data_root>/val/<class>/*.jpg with the classes '
    f'{", ".join(FLOWER_CLASSES)}, or let flower-mm download and split it: '
    '`python tools/prepare_flowers.py` (see docs/data_preparation.md), or '
    'train with an empty or missing data root, which does the same on first '
    'use.')


#: What FlowerDataset does with image files that cannot be decoded.
ON_BROKEN = ('error', 'skip')
SKIP_BROKEN_OPTIONS = ' '.join(
    f'{loader}.dataset.on_broken=skip'
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'))
# Broken files named in a message; the rest are in the list file.
_MAX_LISTED = 10


class FlowerDataError(FlowerUserError, RuntimeError):
    """The flower data on disk is missing or not laid out as expected."""


class BrokenImagesError(FlowerDataError):
    """Image files of a split cannot be decoded."""


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
        on_broken (str): What to do with image files that cannot be decoded,
            found at build time (:func:`find_broken_images`, cached):
            ``'error'`` stops with a list of them, ``'skip'`` leaves them
            out with one warning. Defaults to ``'error'``.
        **kwargs: Passed to :class:`CustomDataset`.

    In training, a file that breaks after the check (deleted, replaced) is
    re-drawn as MMEngine re-draws any sample whose pipeline returns None
    (``RobustLoadImageFromFile(ignore_empty=True)``); the replacement
    sample carries ``redrawn_for`` in its metainfo, which
    ``BrokenImageHook`` counts into the epoch's log.
    """

    METAINFO = {'classes': FLOWER_CLASSES}
    HOW_TO_GET_DATA = HOW_TO_GET_DATA

    def __init__(self,
                 data_root: str = '',
                 data_prefix='',
                 ann_file: str = '',
                 prepare: Union[bool, str] = 'auto',
                 prepare_source: Optional[str] = None,
                 on_broken: str = 'error',
                 **kwargs):
        if on_broken not in ON_BROKEN:
            raise FlowerDataError(
                f'on_broken="{on_broken}" is not one of {", ".join(ON_BROKEN)}'
            )
        self.on_broken = on_broken
        #: ``{path: reason}`` of the files left out with on_broken='skip'.
        self.skipped_broken: Dict[str, str] = {}
        self._redrawn_for: List[str] = []
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
        return self._leave_out_or_refuse_broken(data_list)

    def _leave_out_or_refuse_broken(self, data_list: List[dict]) -> List[dict]:
        folder = self.img_prefix or self.data_root or '.'
        check = find_broken_images_on_rank0(
            [d['img_path'] for d in data_list], folder)
        print_log(
            f'{type(self).__name__}: {check.num_files} image files in '
            f'{folder} checked in {check.seconds:.1f} s: {check.num_decoded} '
            f'decoded, {check.num_cached} known from the cache, '
            f'{check.num_trusted} verified by tools/prepare_flowers.py '
            f'(cache: {check.cache_file or "none"})',
            logger='current')
        if not check.broken:
            return data_list
        broken = {
            osp.relpath(path, folder): reason
            for path, reason in sorted(check.broken.items())
        }
        list_file = self._write_broken_list(folder, broken)
        listed = '; '.join(f'{path} ({reason})'
                           for path, reason in list(broken.items())
                           [:_MAX_LISTED])
        if len(broken) > _MAX_LISTED:
            listed += f'; and {len(broken) - _MAX_LISTED} more'
        listed += f' (full list: {list_file})'
        if self.on_broken == 'error':
            raise BrokenImagesError(
                f'{len(broken)} of {len(data_list)} image files in {folder} '
                f'cannot be decoded: {listed}. Delete or replace them; or '
                'make a verified split of your photos, which leaves such '
                'files out and lists them: `python tools/prepare_flowers.py '
                'DIR --out NEW_DATA_ROOT` (DIR holding one folder per class); '
                'or leave them out: `--cfg-options '
                f'{SKIP_BROKEN_OPTIONS}`.')
        kept = [d for d in data_list if d['img_path'] not in check.broken]
        if not kept:
            raise BrokenImagesError(
                f'None of the {len(data_list)} image files in {folder} can '
                f'be decoded: {listed}. ' + self.HOW_TO_GET_DATA)
        per_class = Counter(
            self.CLASSES[d['gt_label']] for d in data_list
            if d['img_path'] in check.broken and d.get('gt_label', -1) >= 0)
        print_log(
            f'Leaving out {len(broken)} image file(s) in {folder} that cannot '
            'be decoded (on_broken=skip; per class: ' +
            ', '.join(f'{c} {n}' for c, n in sorted(per_class.items())) +
            f'): {listed}. {len(kept)} of {len(data_list)} images remain.',
            logger='current',
            level=logging.WARNING)
        self.skipped_broken = dict(check.broken)
        return kept

    def _write_broken_list(self, folder: str, broken: Dict[str,
                                                            str]) -> str:
        """Write the full list into the run's work dir, else beside the
        data; return where."""
        name = f'broken_images_{osp.basename(osp.normpath(folder))}.txt'
        lines = [f'# image files in {folder} that cannot be decoded']
        lines += [f'{path}\t{reason}' for path, reason in broken.items()]
        for out_dir in (_runner_work_dir(), self.data_root or folder):
            if not out_dir:
                continue
            path = osp.join(out_dir, name)
            try:
                with open(path, 'w', encoding='utf-8') as f:
                    f.write('\n'.join(lines) + '\n')
                return path
            except OSError:
                continue
        return '(not written: neither the work dir nor the data is writable)'

    def prepare_data(self, idx: int):
        data = super().prepare_data(idx)
        if self.test_mode:
            return data
        if data is None:
            # The loader gave up on a file that broke after the check;
            # BaseDataset draws another sample, which will say so.
            self._redrawn_for.append(self.get_data_info(idx)['img_path'])
        elif self._redrawn_for and 'data_samples' in data:
            data['data_samples'].set_metainfo(
                {'redrawn_for': self._redrawn_for})
            self._redrawn_for = []
        return data

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


def find_broken_images_on_rank0(paths: List[str],
                                folder: str) -> ImageCheckResult:
    """:func:`find_broken_images`, decoding in one process of a distributed
    run: rank 0 checks and writes the cache while the other ranks wait at a
    barrier, then they read its verdicts from the cache, so every rank gets
    the same broken files (and raises or skips alike) without every rank
    decoding the whole folder at once. Where the cache cannot be written,
    each rank decodes for itself."""
    if not is_distributed():
        return find_broken_images(paths, folder)
    if get_rank() == 0:
        try:
            return find_broken_images(paths, folder)
        finally:
            # Also when the check fails: the other ranks must not wait
            # forever; they check for themselves and fail alike.
            barrier()
    barrier()
    return find_broken_images(paths, folder)


def _runner_work_dir() -> Optional[str]:
    """The current Runner's work dir: its log file is
    ``<work_dir>/<timestamp>/<timestamp>.log``. None outside a Runner."""
    for handler in MMLogger.get_current_instance().handlers:
        if isinstance(handler, logging.FileHandler):
            return osp.dirname(osp.dirname(handler.baseFilename))
    return None


def _list_files(path: str) -> List[str]:
    """Files under ``path``, recursively, relative to it."""
    files = []
    for root, _, names in os.walk(path, followlinks=True):
        rel = osp.relpath(root, path)
        files += [n if rel == '.' else osp.join(rel, n) for n in names]
    return files
