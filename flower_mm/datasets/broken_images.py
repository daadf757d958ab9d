"""What a dataset does with image files that cannot be decoded: stop with
one message listing them (``on_broken='error'``) or leave them out with one
warning (``'skip'``), the full list written to a file either way.

The verdicts come from :func:`~flower_mm.datasets.image_check.find_broken_images`
(the loader's decoding policy, cached); in a distributed run rank 0 alone
decodes (:func:`find_broken_images_on_rank0`).
"""
import logging
import os.path as osp
from collections import Counter
from typing import Dict, List, Optional, Sequence, Tuple

from mmengine.dist import barrier, get_rank, is_distributed
from mmengine.logging import print_log

from .image_check import ImageCheckResult, find_broken_images
from .split_layout import FlowerDataError

__all__ = [
    'ON_BROKEN', 'SKIP_BROKEN_OPTIONS', 'BrokenImagesError',
    'find_broken_images_on_rank0', 'leave_out_or_refuse_broken'
]

#: What a dataset does with image files that cannot be decoded.
ON_BROKEN = ('error', 'skip')
SKIP_BROKEN_OPTIONS = ' '.join(
    f'{loader}.dataset.on_broken=skip'
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'))
# Broken files named in a message; the rest are in the list file.
_MAX_LISTED = 10


class BrokenImagesError(FlowerDataError):
    """Image files of a split cannot be decoded."""


def check_on_broken(on_broken: str) -> None:
    if on_broken not in ON_BROKEN:
        raise FlowerDataError(
            f'on_broken="{on_broken}" is not one of {", ".join(ON_BROKEN)}')


def leave_out_or_refuse_broken(data_list: List[dict], folder: str,
                               on_broken: str, classes: Sequence[str],
                               list_dirs: Sequence[Optional[str]],
                               how_to_get_data: str
                               ) -> Tuple[List[dict], Dict[str, str]]:
    """``data_list`` without the samples whose image cannot be decoded, and
    ``{path: reason}`` of those left out; or :class:`BrokenImagesError`
    listing them (``on_broken='error'``, or nothing left). The full list
    goes to ``broken_images_<split>.txt`` in the first of ``list_dirs``
    that is writable (the run's work dir, then beside the data)."""
    check = find_broken_images_on_rank0([d['img_path'] for d in data_list],
                                        folder)
    print_log(
        f'{check.num_files} image files in {folder} checked in '
        f'{check.seconds:.1f} s: {check.num_decoded} decoded, '
        f'{check.num_cached} known from the cache, {check.num_trusted} '
        'verified by tools/prepare_flowers.py (cache: '
        f'{check.cache_file or "none"})',
        logger='current')
    if not check.broken:
        return data_list, {}
    broken = {
        osp.relpath(path, folder): reason
        for path, reason in sorted(check.broken.items())
    }
    list_file = _write_broken_list(folder, broken, list_dirs)
    listed = '; '.join(f'{path} ({reason})'
                       for path, reason in list(broken.items())[:_MAX_LISTED])
    if len(broken) > _MAX_LISTED:
        listed += f'; and {len(broken) - _MAX_LISTED} more'
    listed += f' (full list: {list_file})'
    if on_broken == 'error':
        raise BrokenImagesError(
            f'{len(broken)} of {len(data_list)} image files in {folder} '
            f'cannot be decoded: {listed}. Delete or replace them; or make a '
            'verified split of your photos, which leaves such files out and '
            'lists them: `python tools/prepare_flowers.py DIR --out '
            'NEW_DATA_ROOT` (DIR holding one folder per class); or leave them '
            f'out: `--cfg-options {SKIP_BROKEN_OPTIONS}`.')
    kept = [d for d in data_list if d['img_path'] not in check.broken]
    if not kept:
        raise BrokenImagesError(
            f'None of the {len(data_list)} image files in {folder} can be '
            f'decoded: {listed}. ' + how_to_get_data)
    per_class = Counter(
        classes[d['gt_label']] for d in data_list
        if d['img_path'] in check.broken and d.get('gt_label', -1) >= 0)
    print_log(
        f'Leaving out {len(broken)} image file(s) in {folder} that cannot '
        'be decoded (on_broken=skip; per class: ' +
        ', '.join(f'{c} {n}' for c, n in sorted(per_class.items())) +
        f'): {listed}. {len(kept)} of {len(data_list)} images remain.',
        logger='current',
        level=logging.WARNING)
    return kept, dict(check.broken)


def _write_broken_list(folder: str, broken: Dict[str, str],
                       list_dirs: Sequence[Optional[str]]) -> str:
    """Write the full list into the first writable of ``list_dirs``;
    return where."""
    name = f'broken_images_{osp.basename(osp.normpath(folder))}.txt'
    lines = [f'# image files in {folder} that cannot be decoded']
    lines += [f'{path}\t{reason}' for path, reason in broken.items()]
    for out_dir in filter(None, list_dirs):
        path = osp.join(out_dir, name)
        try:
            with open(path, 'w', encoding='utf-8') as f:
                f.write('\n'.join(lines) + '\n')
            return path
        except OSError:
            continue
    return '(not written: neither the work dir nor the data is writable)'


def find_broken_images_on_rank0(paths: List[str],
                                folder: str) -> ImageCheckResult:
    """:func:`find_broken_images`, decoding in one process of a distributed
    run: rank 0 checks and writes the cache while the other ranks wait at a
    barrier, then they read its verdicts from the cache, so every rank gets
    the same broken files (and raises or skips alike) without every rank
    decoding the whole folder at once. Where the cache cannot be written,
    each rank decodes for itself."""
    if not is_distributed():
        return find_broken_images(paths, folder)
    if get_rank() == 0:
        try:
            return find_broken_images(paths, folder)
        finally:
            # Also when the check fails: the other ranks must not wait
            # forever; they check for themselves and fail alike.
            barrier()
    barrier()
    return find_broken_images(paths, folder)
