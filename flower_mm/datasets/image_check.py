"""Find the image files that cannot be decoded, cheaply, and remember it.

:func:`find_broken_images` runs before training, so a broken photo stops a
run (or is left out) before the first iteration instead of killing a data
worker mid-epoch. Its verdict is the loader's (:mod:`.decoding`, the one
policy), and it stays cheap on large folders:

- each file gets a full read and a reduced decode: JPEGs are decoded at
  1/8 scale (libjpeg's DCT scaling still walks every byte, so a truncated
  or garbled file fails, at about half the cost of a full decode), other
  formats fully; threads, since Pillow decodes without the GIL;
- what was verified is remembered in a cache file keyed by each file's
  path, size and modification time, in the user's cache
  (``$FLOWER_MM_CACHE_DIR``, default ``~/.cache/flower_mm``), so a checked
  folder is never decoded again and a changed file is, and the data folder
  is left exactly as it was;
- a split written by ``tools/prepare_flowers.py`` is already verified: the
  files its list names that are not newer than its ``manifest.json`` are
  trusted without decoding.
"""
import hashlib
import json
import os
import os.path as osp
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Dict, Iterable, Optional

from ..fileio import atomic_write_bytes
from .decoding import decode_workers, why_unreadable
from .split_layout import (MANIFEST_NAME, FlowerDataError, list_file,
                           read_split_list)

__all__ = [
    'ImageCheckResult', 'cache_file_for', 'check_image_file',
    'find_broken_images'
]

_CACHE_VERSION = 1


@dataclass
class ImageCheckResult:
    """What :func:`find_broken_images` found and how much work it took."""
    #: ``{path: reason}`` for every file that cannot be decoded.
    broken: Dict[str, str] = field(default_factory=dict)
    num_files: int = 0
    #: Files decoded now (the rest came from the cache or the manifest).
    num_decoded: int = 0
    num_cached: int = 0
    num_trusted: int = 0
    seconds: float = 0.0
    cache_file: Optional[str] = None


def check_image_file(path: str) -> Optional[str]:
    """Why the image file at ``path`` cannot be decoded, or None if it can
    (:func:`~flower_mm.datasets.decoding.why_unreadable`)."""
    try:
        with open(path, 'rb') as f:
            data = f.read()
    except OSError as err:
        return f'cannot be read: {err.strerror or err}'
    return why_unreadable(data)


def find_broken_images(paths: Iterable[str],
                       folder: str,
                       workers: Optional[int] = None) -> ImageCheckResult:
    """Check every file in ``paths``, all under ``folder``; see the module.

    ``folder`` names the cache (:func:`cache_file_for`) and may be a split
    made by ``tools/prepare_flowers.py``, whose manifest is then trusted.
    """
    start = time.perf_counter()
    folder = osp.abspath(folder)
    paths = list(paths)
    cache_file = cache_file_for(folder)
    cached = _read_cache(cache_file)
    trusted_before = _prepared_split(folder)
    result = ImageCheckResult(num_files=len(paths))
    entries, to_decode = {}, []
    for path in paths:
        key = osp.relpath(osp.abspath(path), folder)
        try:
            st = os.stat(path)
        except OSError as err:
            result.broken[path] = f'cannot be read: {err.strerror or err}'
            continue
        stamp = [st.st_size, st.st_mtime_ns]
        hit = cached.get(key)
        if hit is not None and hit[:2] == stamp:
            result.num_cached += 1
            reason = hit[2]
        elif key in trusted_before and st.st_mtime_ns <= trusted_before[key]:
            result.num_trusted += 1
            reason = None
        else:
            to_decode.append((path, key, stamp))
            continue
        entries[key] = stamp + [reason]
        if reason:
            result.broken[path] = reason
    if to_decode:
        with ThreadPoolExecutor(workers or decode_workers()) as pool:
            reasons = pool.map(check_image_file, [p for p, _, _ in to_decode])
            for (path, key, stamp), reason in zip(to_decode, reasons):
                entries[key] = stamp + [reason]
                if reason:
                    result.broken[path] = reason
        result.num_decoded = len(to_decode)
        # Only what was decoded is worth a write: a prepared split leaves
        # its folder as tools/prepare_flowers.py wrote it.
        result.cache_file = _write_cache(cache_file, folder, entries)
    elif osp.isfile(cache_file):
        result.cache_file = cache_file
    result.seconds = time.perf_counter() - start
    return result


def cache_file_for(folder: str) -> str:
    """Where the verdicts on ``folder``'s files are kept: the user's cache,
    never the data itself (a split is used as it is, and may be shared or
    read-only)."""
    cache_home = os.environ.get('FLOWER_MM_CACHE_DIR') or osp.expanduser(
        '~/.cache/flower_mm')
    folder = osp.abspath(folder)
    digest = hashlib.sha256(folder.encode()).hexdigest()[:16]
    return osp.join(cache_home, 'image_check',
                    f'{osp.basename(folder)}-{digest}.json')


def _read_cache(cache_file: str) -> Dict[str, list]:
    try:
        with open(cache_file, encoding='utf-8') as f:
            cache = json.load(f)
        if cache.get('version') == _CACHE_VERSION:
            return dict(cache['files'])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass  # no cache yet, or an unreadable one: check everything again
    return {}


def _write_cache(cache_file: str, folder: str,
                 entries: Dict[str, list]) -> Optional[str]:
    """Write atomically (data workers and ranks may race); None if not
    writable, which only costs a re-check next time."""
    try:
        atomic_write_bytes(
            json.dumps({
                'version': _CACHE_VERSION,
                'folder': folder,
                'files': entries
            }).encode(), cache_file)
    except OSError:
        return None
    return cache_file


def _prepared_split(folder: str) -> Dict[str, int]:
    """``{path relative to folder: manifest mtime}`` for the images that
    ``tools/prepare_flowers.py`` verified, when ``folder`` is one of its
    splits (``<out>/train`` listed in ``<out>/train.txt``)."""
    out_dir, split = osp.split(folder)
    try:
        verified_until = os.stat(osp.join(out_dir,
                                          MANIFEST_NAME)).st_mtime_ns
        listed = read_split_list(osp.join(out_dir, list_file(split)))
    except (OSError, FlowerDataError):  # no prepared split: decode all
        return {}
    return {name: verified_until for name, _ in listed}
