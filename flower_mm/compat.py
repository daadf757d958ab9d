"""Known upstream breakages of the pinned stack, absorbed in one place.

Imported first by :mod:`flower_mm.registration`, so every tool and every
config that lists ``custom_imports=dict(imports=['flower_mm.registration'])``
gets these fixes.

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
   scheme with a loader that keeps ``weights_only=True``, and point
   MMEngine's module-level ``load_from_http`` at it, which its
   ``torchvision://``, ``open-mmlab://`` and ``mmcls://`` loaders call.
   The local loader passes ``weights_only=True`` explicitly, so the
   ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` variable cannot turn it off.
3. Every checkpoint scheme reports a refused pickle as
   :class:`UnsafeCheckpointError`, naming the file and the object it holds,
   instead of torch's advice to retry with ``weights_only=False``. All
   checkpoint loading in MMEngine and MMPretrain (``--resume``,
   ``load_from``, ``init_cfg`` pretrained weights, ``get_model``, the
   inferencers) goes through ``CheckpointLoader``, so this covers them all.
4. numpy 2 refuses mmcv 2.2's ``np.uint8(hue_factor * 255)`` for a
   negative factor (``OverflowError`` in ``mmcv.adjust_hue``, which
   MMPretrain's ``ColorJitter(hue=...)`` calls half of the time); numpy 1
   wrapped it into 0..255. :func:`adjust_hue` is mmcv's with that shift
   wrapped first: the same images under either numpy.
"""
import functools
import os
import os.path as osp
import pickle
import re

import cv2
import mmcv
import numpy as np
import torch
from mmcv.image import photometric
from mmengine.dist import get_dist_info
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner import checkpoint as mmengine_checkpoint
from mmengine.runner.checkpoint import CheckpointLoader

from .utils.user_errors import FlowerUserError

# numpy 2 moved numpy.core to numpy._core (the pinned 1.26 has only core).
_multiarray = (np._core if np.lib.NumpyVersion(np.__version__) >= '2.0.0'
               else np.core).multiarray

# Every global an MMEngine 0.10.7 checkpoint pickles besides tensors and
# builtins: the MessageHub's HistoryBuffers and the numpy values they hold.
MMENGINE_CHECKPOINT_GLOBALS = [
    HistoryBuffer,
    np.ndarray,
    np.dtype,
    _multiarray._reconstruct,
    _multiarray.scalar,
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


class UnsafeCheckpointError(FlowerUserError, pickle.UnpicklingError):
    """A checkpoint holds objects that safe loading refuses to unpickle."""


def _refusal(filename: str, err: pickle.UnpicklingError) -> str:
    message = str(err)
    found = re.search(r'GLOBAL (\S+)', message)
    if found:
        what = f'it holds {found.group(1)}'
    else:  # e.g. "Unsupported operand 149": torch's last line before docs
        lines = [line.strip() for line in
                 message.split('Check the documentation')[0].splitlines()]
        what = [line for line in lines if line][-1]
    return (f'refused to load checkpoint "{filename}": it contains code or '
            'objects outside the allow-list of weights, numbers and '
            f'MMEngine log buffers ({what}); unpickling it could run '
            'commands. Only load checkpoints you trust. If you trust this '
            'file, re-save its weights once: torch.save({"state_dict": '
            'torch.load(PATH, weights_only=False)["state_dict"]}, NEW_PATH).')


def refuse_unsafe_pickles(loader):
    """Make a ``CheckpointLoader`` scheme raise :class:`UnsafeCheckpointError`
    (naming the file) where safe loading refuses the file's pickle."""

    @functools.wraps(loader)
    def guarded_loader(filename, map_location=None, *args, **kwargs):
        try:
            return loader(filename, map_location, *args, **kwargs)
        except UnsafeCheckpointError:
            raise
        except pickle.UnpicklingError as err:
            # torch prefixes every refusal of weights-only loading so;
            # other unpickling errors (a corrupt file) pass unchanged.
            if 'Weights only load failed' not in str(err):
                raise
            raise UnsafeCheckpointError(_refusal(filename, err)) from None

    guarded_loader.refuses_unsafe_pickles = True
    return guarded_loader


@refuse_unsafe_pickles
def load_from_local_safely(filename, map_location=None):
    """MMEngine's local loader, with ``weights_only=True`` explicit."""
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    return torch.load(filename, map_location=map_location, weights_only=True)


@refuse_unsafe_pickles
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


def _install_safe_checkpoint_loaders() -> None:
    # The other schemes (pavi://, s3://, torchvision://...) keep MMEngine's
    # loaders, which unpickle with torch.load's weights_only default (True
    # on torch >= 2.6) or through the module-level load_from_http.
    for prefix, loader in list(CheckpointLoader._schemes.items()):
        if prefix not in ('', 'http://', 'https://') and not getattr(
                loader, 'refuses_unsafe_pickles', False):
            CheckpointLoader.register_scheme(
                prefix, refuse_unsafe_pickles(loader), force=True)
    CheckpointLoader.register_scheme('', load_from_local_safely, force=True)
    CheckpointLoader.register_scheme(('http://', 'https://'),
                                     load_from_http_safely,
                                     force=True)
    mmengine_checkpoint.load_from_local = load_from_local_safely
    mmengine_checkpoint.load_from_http = load_from_http_safely


#: mmcv's own, before :func:`adjust_hue` replaces it (its source is
#: checked in tests/test_engine/test_upstream_copies.py).
MMCV_ADJUST_HUE = photometric.adjust_hue


def adjust_hue(img: np.ndarray, hue_factor: float, backend=None):
    """``mmcv.adjust_hue`` (mmcv 2.2; its arguments, checks and results),
    with the hue shift wrapped into 0..255 before the uint8 cast."""
    from PIL import Image
    backend = backend or mmcv.image.io.imread_backend
    if backend not in ('cv2', 'pillow'):
        raise ValueError(f'backend: {backend} is not supported.'
                         "Supported backends are 'cv2', 'pillow'")
    if not -0.5 <= hue_factor <= 0.5:
        raise ValueError(f'hue_factor:{hue_factor} is not in [-0.5, 0.5].')
    if not (isinstance(img, np.ndarray) and img.ndim in (2, 3)):
        raise TypeError('img should be ndarray with dim=[2 or 3].')
    shift = np.uint8(int(hue_factor * 255) % 256)
    if backend == 'pillow':
        assert img.dtype == np.uint8, 'Pillow backend only support uint8 type'
        h, s, v = Image.fromarray(np.ascontiguousarray(
            img[..., ::-1])).convert('HSV').split()
        h = Image.fromarray(np.asarray(h, np.uint8) + shift)  # wraps around
        rgb = Image.merge('HSV', (h, s, v)).convert('RGB')
        return np.array(rgb, dtype=img.dtype)[..., ::-1]
    h, s, v = cv2.split(
        cv2.cvtColor(img.astype(np.uint8), cv2.COLOR_BGR2HSV_FULL))
    hsv = cv2.merge([h + shift, s, v])  # uint8 addition wraps around
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR_FULL).astype(img.dtype)


_install_safe_checkpoint_loaders()
allow_mmengine_checkpoint_globals()
photometric.adjust_hue = mmcv.image.adjust_hue = mmcv.adjust_hue = adjust_hue

