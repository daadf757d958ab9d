from ..utils.lazy import lazy_exports

# Loaded on first use, so that data preparation and the class names can be
# imported without torch (tools/prepare_flowers.py).
_EXPORTS = {
    'FLOWER_CLASSES': 'categories',
    'IMG_EXTENSIONS': 'categories',
    'FlowerDataError': 'flower_dataset',
    'FlowerDataset': 'flower_dataset',
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
