"""Any ImageNet-style class-folder dataset: your own photos."""
import os
import os.path as osp
from typing import Optional, Sequence, Tuple, Union

from mmengine.fileio import list_from_file
from mmpretrain.registry import DATASETS

from .flower_dataset import FlowerDataError, FlowerDataset


@DATASETS.register_module()
class ClassFolderDataset(FlowerDataset):
    """``<data_root>/<data_prefix>/<class>/<image>`` with classes of your own.

    The classes are, in label order, ``classes`` when given, else the lines
    of ``<data_root>/classes.txt`` when it exists, else the sub-folder names
    of ``<data_root>/<data_prefix>``, sorted. Every split has to hold the
    same class folders, each with images: the checks and error messages of
    :class:`FlowerDataset` apply, it only never downloads anything.

    With ``num_classes='auto'`` in the model's head and data preprocessor,
    :class:`flower_mm.engine.runner.FlowerRunner` sizes the model by these
    classes (see ``configs/resnet50_custom_folders.py``).

    Args:
        classes (Sequence[str] | str, optional): Class names, or a file of
            one per line (relative to ``data_root`` unless absolute).
        **kwargs: Passed to :class:`FlowerDataset` (``data_root``,
            ``data_prefix``, ``ann_file``, ``pipeline``...).
    """

    METAINFO = {}
    HOW_TO_GET_DATA = (
        'Lay the photos out as <data_root>/train/<class>/*.jpg and '
        '<data_root>/val/<class>/*.jpg, one folder per class with the same '
        'class folders in every split (optionally <data_root>/classes.txt, '
        'one class per line, fixes their order).')

    def __init__(self,
                 data_root: str = '',
                 data_prefix: str = '',
                 classes: Union[str, Sequence[str], None] = None,
                 **kwargs):
        kwargs.pop('prepare', None)  # inherited flower settings: no download
        kwargs.pop('prepare_source', None)
        metainfo = dict(kwargs.pop('metainfo', None) or {})
        metainfo['classes'] = self._find_classes(data_root, data_prefix,
                                                 classes)
        super().__init__(
            data_root=data_root,
            data_prefix=data_prefix,
            metainfo=metainfo,
            prepare=False,
            **kwargs)

    @classmethod
    def _find_classes(cls, data_root: str, data_prefix: str,
                      classes: Union[str, Sequence[str], None]
                      ) -> Tuple[str, ...]:
        classes_file = osp.join(data_root, 'classes.txt')
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


def dataset_classes(dataset_cfg: dict) -> Optional[Tuple[str, ...]]:
    """The classes a dataset config yields, without loading its images."""
    dataset = DATASETS.build(dict(dataset_cfg, lazy_init=True))
    classes = dataset.metainfo.get('classes')
    return tuple(classes) if classes else None
