"""The flower classes and the image files the dataset reads.

Torch-free on purpose: data preparation, benchmarks and inference import
these without loading MMPretrain.
"""
from typing import Dict, Optional, Tuple

#: The five classes in label order (label = index).
FLOWER_CLASSES: Tuple[str, ...] = ('daisy', 'dandelion', 'rose', 'sunflower',
                                   'tulip')
#: Folder names accepted for each class (compared case-insensitively).
CLASS_ALIASES: Dict[str, str] = {
    'daisy': 'daisy', 'daisies': 'daisy',
    'dandelion': 'dandelion', 'dandelions': 'dandelion',
    'rose': 'rose', 'roses': 'rose',
    'sunflower': 'sunflower', 'sunflowers': 'sunflower',
    'tulip': 'tulip', 'tulips': 'tulip',
}  # yapf: disable
#: The extensions MMPretrain's CustomDataset reads by default: what
#: preparation keeps, what a folder of inputs is searched for.
IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif')


def normalise_class_name(name: str) -> Optional[str]:
    """Map a folder name to its class (``Roses`` -> ``rose``), else None."""
    return CLASS_ALIASES.get(name.strip().lower())
