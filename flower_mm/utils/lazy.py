"""Package attributes imported on first use (PEP 562).

A package ``__init__`` that re-exports its modules this way can be a parent
of torch-free modules: importing ``flower_mm.utils.user_errors`` or
``flower_mm.datasets.preparation`` runs the ``__init__`` but loads none of
the heavy siblings.
"""
import importlib
from typing import Callable, Dict, List


def lazy_exports(package: str, modules: Dict[str, List[str]]) -> Callable:
    """A module ``__getattr__`` that finds each name of ``modules[module]``
    in ``package.<module>``."""
    exports = {name: mod for mod, names in modules.items() for name in names}

    def __getattr__(name: str):
        if name not in exports:
            raise AttributeError(
                f'module {package!r} has no attribute {name!r}')
        module = importlib.import_module(f'{package}.{exports[name]}')
        return getattr(module, name)

    return __getattr__
