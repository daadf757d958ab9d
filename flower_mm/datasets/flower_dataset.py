"""The 5-class flower dataset: a class-folder dataset whose classes are
fixed and whose data can be prepared on first use."""
from typing import Optional, Union

from mmpretrain.registry import DATASETS

from .auto_prepare import prepare_on_first_use
from .categories import FLOWER_CLASSES
from .class_folder_dataset import ClassFolderDataset

HOW_TO_GET_DATA = (
    'Lay the data out as <data_root>/train/<class>/*.jpg and '
    '<data_root>/val/<class>/*.jpg with the classes '
    f'{", ".join(FLOWER_CLASSES)}, or let flower-mm download and split it: '
    '`python tools/prepare_flowers.py` (see docs/data_preparation.md), or '
    'train with an empty or missing data root, which does the same on first '
    'use.')


@DATASETS.register_module()
class FlowerDataset(ClassFolderDataset):
    """Daisy, dandelion, rose, sunflower and tulip photos.

    A :class:`ClassFolderDataset` (the same layout, checks and handling of
    broken images) with the five classes in a fixed label order, that
    prepares its data when the data root holds none.

    Args:
        prepare (bool | str): ``'auto'`` downloads, verifies and splits the
            public archive into ``data_root`` when it holds no split yet, as
            MMPretrain's CIFAR and MNIST datasets download theirs; a split
            made by hand or by ``tools/prepare_flowers.py`` is used as it
            is. True also checks an existing split against
            ``prepare_source``; False never prepares. Defaults to 'auto'.
        prepare_source (str, optional): URL, archive or folder to prepare
            from. Defaults to the TensorFlow ``flower_photos.tgz`` URL.
        **kwargs: Passed to :class:`ClassFolderDataset` (``data_root``,
            ``data_prefix``, ``ann_file``, ``on_broken``, ``pipeline``...).
    """

    METAINFO = {'classes': FLOWER_CLASSES}
    HOW_TO_GET_DATA = HOW_TO_GET_DATA

    def __init__(self,
                 data_root: str = '',
                 prepare: Union[bool, str] = 'auto',
                 prepare_source: Optional[str] = None,
                 **kwargs):
        prepare_on_first_use(data_root, prepare, prepare_source)
        super().__init__(data_root=data_root, **kwargs)
