"""flower-mm: fine-tune ImageNet-pretrained classifiers on 5 flower classes.

Importing this package registers its modules in MMPretrain's registries;
configs load it with ``custom_imports=dict(imports=['flower_mm'])``.
"""
from . import compat  # noqa: F401  (first: patches what the rest loads)
from .datasets import *  # noqa: F401,F403
from .deployment import *  # noqa: F401,F403
from .engine import *  # noqa: F401,F403
from .evaluation import *  # noqa: F401,F403
from .fileio import *  # noqa: F401,F403
from .transforms import *  # noqa: F401,F403
from .utils import *  # noqa: F401,F403

__version__ = '0.1.0'
