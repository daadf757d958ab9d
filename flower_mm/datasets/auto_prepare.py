"""Prepare the flower split on first use, as MMPretrain's CIFAR downloads.

:class:`~flower_mm.datasets.FlowerDataset` calls :func:`prepare_on_first_use`
when it is built, so ``python tools/train.py configs/resnet50_flowers.py``
works on a fresh machine. A data root that already holds a split, whether
made by ``tools/prepare_flowers.py`` or by hand, is used as it is.
"""
import os.path as osp
import posixpath
import urllib.parse
import urllib.request
from typing import Optional, Union

from mmengine.logging import print_log

from .preparation import (DEFAULT_SOURCE_URL, DEFAULT_VAL_RATIO,
                          prepare_flowers)
from .split_layout import SPLIT_MARKERS

__all__ = ['holds_split', 'prepare_on_first_use', 'remote_size']


def holds_split(data_root: str) -> bool:
    """Whether ``data_root`` holds a split (or the start of one)."""
    return any(osp.lexists(osp.join(data_root, m)) for m in SPLIT_MARKERS)


def remote_size(url: str, timeout: float = 10.0) -> Optional[int]:
    """The ``Content-Length`` of ``url`` by a HEAD request; None when the
    server does not say or cannot be reached (the download then reports)."""
    request = urllib.request.Request(
        url, method='HEAD', headers={'User-Agent': 'flower-mm/prepare'})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            length = response.headers.get('Content-Length', '')
    except (OSError, ValueError):  # URLError and HTTPError are OSErrors
        return None
    return int(length) if length.isdigit() else None


def _size_text(num_bytes: Optional[int]) -> str:
    if num_bytes is None:
        return 'size unknown'
    if num_bytes < 2**20:
        return f'{num_bytes / 2**10:.1f} KiB'
    return f'{num_bytes / 2**20:.1f} MiB'


def prepare_on_first_use(data_root: str,
                         prepare: Union[bool, str] = 'auto',
                         source: Optional[str] = None) -> None:
    """Download, verify and split the flower photos into ``data_root``.

    Args:
        data_root: Where the split goes (``train/``, ``val/``...).
        prepare: ``'auto'`` prepares only when ``data_root`` holds no split;
            True also checks an existing split (a no-op when it was made
            from ``source``); False does nothing.
        source: URL, archive or folder; None is TensorFlow's
            ``flower_photos.tgz`` (and, with True, accepts any split).

    Raises:
        PreparationError: e.g. offline, saying how to get the archive by
            hand.
    """
    if prepare not in (True, False, 'auto'):
        raise ValueError(
            f"prepare must be True, False or 'auto', not {prepare!r}")
    if not prepare or (prepare == 'auto' and holds_split(data_root)):
        return
    if prepare == 'auto':
        url = DEFAULT_SOURCE_URL if source is None else str(source)
        if urllib.parse.urlparse(url).scheme in ('http', 'https'):
            name = posixpath.basename(urllib.parse.urlparse(url).path)
            what = f'downloading {name} ({_size_text(remote_size(url))}) ' \
                f'from {url}'
        else:
            what = f'reading {url}'
        ratio = f'{round(10 * (1 - DEFAULT_VAL_RATIO))}:' \
            f'{round(10 * DEFAULT_VAL_RATIO)}'
        print_log(
            f'No flower split in {osp.abspath(data_root)} yet: {what}, '
            f'verifying every image and splitting it {ratio} into train/ '
            'and val/ there (once; prepare=False turns this off)',
            logger='current')
    # prepare_flowers takes a lock: of several processes one prepares, the
    # others wait and then find the split.
    prepare_flowers(source, out_dir=data_root, logger='current')
