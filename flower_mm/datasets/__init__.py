from ..utils.lazy import lazy_exports

# Loaded on first use, so that data preparation and the class names import
# without torch (tools/prepare_flowers.py).
_MODULES = {
    'broken_images': ['ON_BROKEN', 'BrokenImagesError'],
    'class_folder_dataset': ['ClassFolderDataset', 'dataset_classes'],
    'categories': ['FLOWER_CLASSES', 'IMG_EXTENSIONS'],
    'flower_dataset': ['FlowerDataset'],
    'image_check': [
        'ImageCheckResult', 'check_image_file', 'find_broken_images'
    ],
    'split_layout': ['FlowerDataError'],
}
__all__ = sorted(n for names in _MODULES.values() for n in names)
__getattr__ = lazy_exports(__name__, _MODULES)
