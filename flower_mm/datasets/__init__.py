from .class_folder_dataset import ClassFolderDataset, dataset_classes
from .flower_dataset import FLOWER_CLASSES, FlowerDataError, FlowerDataset

__all__ = [
    'ClassFolderDataset', 'FLOWER_CLASSES', 'FlowerDataError',
    'FlowerDataset', 'dataset_classes'
]
