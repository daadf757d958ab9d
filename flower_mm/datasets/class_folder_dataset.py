"""Any ImageNet-style class-folder dataset, checked before training."""
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple, Union

from mmengine.fileio import list_from_file
from mmpretrain.datasets import CustomDataset
from mmpretrain.registry import DATASETS

from .broken_images import check_on_broken, leave_out_or_refuse_broken
from .split_layout import CLASSES_FILE, FlowerDataError, read_split_list


@DATASETS.register_module()
class ClassFolderDataset(CustomDataset):
    """``<data_root>/<data_prefix>/<class>/<image>``, or an annotation file
    of ``<class>/<image> <label>`` lines, as MMPretrain's ``CustomDataset``
    reads them, checked when it is built: a missing root, split or class
    folder, an unexpected folder, a class without images, a bad annotation
    line or an image that cannot be decoded fails before any training, with
    a message that says what was found and what was expected.

    The classes are, in label order, those of the class (``METAINFO``, as
    :class:`~flower_mm.datasets.FlowerDataset` fixes them), else ``classes``
    when given, else the lines of ``<data_root>/classes.txt`` when it
    exists, else the sub-folder names of ``<data_root>/<data_prefix>``,
    sorted. Every split has to hold the same class folders, each with
    images.

    With ``num_classes='auto'`` in the model's head and data preprocessor,
    :class:`flower_mm.engine.runner.FlowerRunner` sizes the model by these
    classes (see ``configs/resnet50_custom_folders.py``).

    Args:
        classes (Sequence[str] | str, optional): Class names, or a file of
            one per line (relative to ``data_root`` unless absolute).
        on_broken (str): What to do with image files that cannot be decoded,
            found at build time (:mod:`~flower_mm.datasets.broken_images`):
            ``'error'`` stops with a list of them, ``'skip'`` leaves them
            out with one warning. Defaults to ``'error'``.
        work_dir (str, optional): Where the list of such files goes (the
            Runner's work dir: :class:`FlowerRunner` passes it); without
            one, or where it is not writable, beside the data.
        **kwargs: Passed to :class:`CustomDataset` (``data_root``,
            ``data_prefix``, ``ann_file``, ``pipeline``...).

    In training, a file that breaks after the check (deleted, replaced) is
    re-drawn as MMEngine re-draws any sample whose pipeline returns None
    (``RobustLoadImageFromFile(ignore_empty=True)``); the replacement
    sample carries ``redrawn_for`` in its metainfo, which
    ``BrokenImageHook`` counts into the epoch's log.
    """

    HOW_TO_GET_DATA = (
        'Lay the photos out as <data_root>/train/<class>/*.jpg and '
        '<data_root>/val/<class>/*.jpg, one folder per class with the same '
        'class folders in every split (optionally <data_root>/classes.txt, '
        'one class per line, fixes their order).')

    def __init__(self,
                 data_root: str = '',
                 data_prefix: str = '',
                 ann_file: str = '',
                 classes: Union[str, Sequence[str], None] = None,
                 on_broken: str = 'error',
                 work_dir: Optional[str] = None,
                 **kwargs):
        check_on_broken(on_broken)
        self.on_broken, self.work_dir = on_broken, work_dir
        #: ``{path: reason}`` of the files left out with on_broken='skip'.
        self.skipped_broken: Dict[str, str] = {}
        self._redrawn_for: List[str] = []
        fixed = self.METAINFO.get('classes')
        if not fixed or classes is not None:
            found = self._find_classes(data_root, data_prefix, classes)
            if fixed and tuple(fixed) != found:
                raise FlowerDataError(
                    f'{type(self).__name__} has the classes {list(fixed)}, '
                    f'not {list(found)}: use ClassFolderDataset for photos '
                    'of other classes.')
            kwargs['metainfo'] = dict(
                kwargs.get('metainfo') or {}, classes=found)
        super().__init__(
            data_root=data_root,
            data_prefix=data_prefix,
            ann_file=ann_file,
            **kwargs)

    @classmethod
    def _find_classes(cls, data_root: str, data_prefix: str,
                      classes: Union[str, Sequence[str], None]
                      ) -> Tuple[str, ...]:
        classes_file = osp.join(data_root, CLASSES_FILE)
        if isinstance(classes, str):
            classes_file = osp.join(data_root, classes)
        if classes is None and not osp.isfile(classes_file):
            split_dir = osp.join(data_root, data_prefix)
            if not osp.isdir(split_dir):
                raise FlowerDataError(f'Split folder "{split_dir}" does not '
                                      'exist. ' + cls.HOW_TO_GET_DATA)
            found = sorted(
                d for d in os.listdir(split_dir)
                if osp.isdir(osp.join(split_dir, d)) and not d.startswith('.'))
        elif isinstance(classes, (list, tuple)):
            found = list(classes)
        else:
            if not osp.isfile(classes_file):
                raise FlowerDataError(f'Class list "{classes_file}" does not '
                                      'exist. ' + cls.HOW_TO_GET_DATA)
            found = [c.strip() for c in list_from_file(classes_file)]
            found = [c for c in found if c]
        if not found:
            raise FlowerDataError(
                f'No classes found for "{osp.join(data_root, data_prefix)}": '
                'it has no class folders. ' + cls.HOW_TO_GET_DATA)
        return tuple(found)

    def load_data_list(self) -> List[dict]:
        if not osp.isdir(self.data_root or '.'):
            raise FlowerDataError(
                f'Data root "{self.data_root}" does not exist. ' +
                self.HOW_TO_GET_DATA)
        if self.ann_file:
            self._check_ann_file()
        else:
            self._check_class_folders()
        data_list = super().load_data_list()
        if not data_list:
            raise FlowerDataError(
                f'The split "{self.ann_file or self.img_prefix}" is empty: '
                f'it lists no images. ' + self.HOW_TO_GET_DATA)
        folder = self.img_prefix or self.data_root or '.'
        kept, self.skipped_broken = leave_out_or_refuse_broken(
            data_list, folder, self.on_broken, self.CLASSES,
            (self.work_dir, self.data_root or folder), self.HOW_TO_GET_DATA)
        return kept

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
        # CustomDataset numbers folders alphabetically; number them by the
        # class list instead, so labels never depend on what is on disk.
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
        read_split_list(self.ann_file, len(self.CLASSES))


def dataset_classes(dataset_cfg: dict) -> Optional[Tuple[str, ...]]:
    """The classes a dataset config yields, without loading its images."""
    dataset = DATASETS.build(dict(dataset_cfg, lazy_init=True))
    classes = dataset.metainfo.get('classes')
    return tuple(classes) if classes else None


def _list_files(path: str) -> List[str]:
    """Files under ``path``, recursively, relative to it."""
    files = []
    for root, _, names in os.walk(path, followlinks=True):
        rel = osp.relpath(root, path)
        files += [n if rel == '.' else osp.join(rel, n) for n in names]
    return files
