from .flower_dataset import (FLOWER_CLASSES, ON_BROKEN, BrokenImagesError,
                             FlowerDataError, FlowerDataset)
from .image_check import (ImageCheckResult, check_image_file,
                          find_broken_images)

__all__ = [
    'FLOWER_CLASSES', 'ON_BROKEN', 'BrokenImagesError', 'FlowerDataError',
    'FlowerDataset', 'ImageCheckResult', 'check_image_file',
    'find_broken_images'
]
