"""Known upstream breakages of the pinned stack, absorbed in one place.

Imported first by :mod:`flower_mm`, so every tool and every config that lists
``custom_imports=dict(imports=['flower_mm'])`` gets these fixes.

1. torch >= 2.6 loads checkpoints with ``weights_only=True``. MMEngine 0.10.7
   stores its ``MessageHub`` state (``HistoryBuffer``, numpy arrays and
   scalars) in every checkpoint, so ``--resume``, ``load_from`` and
   ``tools/test.py`` fail with ``UnpicklingError``. We allow-list exactly
   those globals; safe loading stays on, so a crafted pickle still cannot run
   code. ``HistoryBuffer`` also pickles its statistics methods (``min``,
   ``max``...) as ``getattr(HistoryBuffer, 'min')``; allowing ``getattr``
   would open safe loading to attribute walks, so instead our checkpoints
   leave these defaults out (``HistoryBuffer.__setstate__`` restores them).
   Checkpoints written by stock MMEngine under torch >= 2.6 still hold
   ``getattr`` and are refused with torch's message.
2. MMEngine downloads ``http(s)://`` checkpoints through
   ``torch.hub.load_state_dict_from_url``, whose ``weights_only`` defaults to
   False: a checkpoint from a URL could run code. We re-register the http(s)
   scheme with a loader that keeps ``weights_only=True``.
"""
import os

import numpy as np
import torch
from mmengine.dist import get_dist_info
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader

# Every global an MMEngine 0.10.7 checkpoint pickles besides tensors and
# builtins: the MessageHub's HistoryBuffers and the numpy values they hold.
MMENGINE_CHECKPOINT_GLOBALS = [
    HistoryBuffer,
    np.ndarray,
    np.dtype,
    np.core.multiarray._reconstruct,
    np.core.multiarray.scalar,
    # numpy >= 1.25 pickles dtypes by their class (np.dtypes.Float64DType...).
    *(type(np.dtype(code)) for code in 'bBhHiIlLqQefdg?'),
]


def _history_buffer_state(self) -> dict:
    """``HistoryBuffer.__getstate__`` without the default statistics methods.

    They are class-level functions that ``__setstate__`` registers again; as
    pickled bound methods they would need ``getattr`` on the allow-list.
    """
    state = dict(self.__dict__)
    state.pop('statistics_methods', None)
    return state


HistoryBuffer.__getstate__ = _history_buffer_state


def allow_mmengine_checkpoint_globals() -> None:
    """Allow-list, for ``weights_only`` loading, what MMEngine pickles."""
    torch.serialization.add_safe_globals(MMENGINE_CHECKPOINT_GLOBALS)


@CheckpointLoader.register_scheme(
    prefixes=('http://', 'https://'), force=True)
def load_from_http_safely(filename, map_location=None, model_dir=None,
                          progress=None):
    """MMEngine's http(s) checkpoint loader, with ``weights_only=True``."""
    if progress is None:
        progress = os.isatty(2)

    def load():
        return torch.hub.load_state_dict_from_url(
            filename,
            model_dir=model_dir,
            map_location=map_location,
            progress=progress,
            weights_only=True)

    # As MMEngine does: rank 0 downloads, the others read its cached file.
    rank, world_size = get_dist_info()
    checkpoint = load() if rank == 0 else None
    if world_size > 1:
        torch.distributed.barrier()
        if rank > 0:
            checkpoint = load()
    return checkpoint


allow_mmengine_checkpoint_globals()

