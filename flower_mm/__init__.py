"""flower-mm: fine-tune ImageNet-pretrained classifiers on 5 flower classes.

Importing this package registers its modules in MMPretrain's registries;
configs load it with ``custom_imports=dict(imports=['flower_mm'])``.

``FLOWER_MM_DATA_ONLY=1`` skips the registration (and so torch and
MMPretrain) for tools that need only the torch-free modules: data
preparation, the class names, the user errors (tools/prepare_flowers.py).
"""
import os

__version__ = '0.1.0'

if os.environ.get('FLOWER_MM_DATA_ONLY', '0') in ('', '0'):
    from . import compat  # noqa: F401  (first: patches what the rest loads)
    from .datasets import *  # noqa: F401,F403
    from .deployment import *  # noqa: F401,F403
    from .engine import *  # noqa: F401,F403
    from .evaluation import *  # noqa: F401,F403
    from .fileio import *  # noqa: F401,F403
    from .transforms import *  # noqa: F401,F403
    from .utils import *  # noqa: F401,F403
