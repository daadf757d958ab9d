from .flower_dataset import FLOWER_CLASSES, FlowerDataError, FlowerDataset

__all__ = ['FLOWER_CLASSES', 'FlowerDataError', 'FlowerDataset']
