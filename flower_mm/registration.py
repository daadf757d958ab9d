"""Register flower-mm's modules in MMPretrain's registries.

Configs load this module via
``custom_imports = dict(imports=['flower_mm.registration'])``; the tools
import it themselves, so they also run configs dumped by older versions
(which list ``flower_mm``). Code that builds from a config it did not load
with ``Config.fromfile`` imports it first, like MMPretrain's
``register_all_modules()``.
"""
from . import compat  # noqa: F401  (first: patches what the rest loads)
from .datasets import *  # noqa: F401,F403
from .deployment import *  # noqa: F401,F403
from .engine import *  # noqa: F401,F403
from .evaluation import *  # noqa: F401,F403
from .fileio import *  # noqa: F401,F403
from .transforms import *  # noqa: F401,F403
from .utils import *  # noqa: F401,F403
