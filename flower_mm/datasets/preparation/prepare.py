"""The entry point: a source -> verified, reproducible train/val folders."""
import os
import re
import shutil
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Optional

from filelock import FileLock

from ..categories import FLOWER_CLASSES
from ..decoding import decode_workers
from .archive import extract_once
from .common import (DEFAULT_OUT_DIR, DEFAULT_SEED, DEFAULT_VAL_RATIO,
                     DEFAULT_SOURCE_URL, PreparationError, log, sha256_file,
                     sha256_tree)
from .download import download_file
from .split import (FORCE, FORMAT_VERSION, REPORT_NAME, SPLIT_ENTRIES,
                    SPLIT_RULE, PreparationResult, check_complete,
                    load_manifest, missing_files, settings_conflict, split,
                    write_split)
from .verify import scan, verify

DOWNLOADS_DIR = 'downloads'
EXTRACTED_DIR = 'extracted'


@dataclass
class _Request:
    source: str  # the URL or path as given (DEFAULT_SOURCE_URL for None)
    local: Optional[Path]  # the file or folder; None for a URL
    kind: str  # 'url', 'archive' or 'folder'
    any_source: bool  # no source given: any existing split will do
    out: Path
    seed: int
    val_ratio: float
    logger: object = None

    @cached_property
    def sha256(self) -> str:
        """SHA-256 of the local source."""
        return sha256_tree(self.local) if self.local.is_dir() else \
            sha256_file(self.local)


def prepare_flowers(source=None, out_dir=DEFAULT_OUT_DIR,
                    val_ratio: float = DEFAULT_VAL_RATIO,
                    seed: int = DEFAULT_SEED, force: bool = False,
                    progress: bool = True, logger=None,
                    workers: Optional[int] = None, retries: int = 3,
                    backoff: float = 1.0,
                    timeout: float = 60.0) -> PreparationResult:
    """Download, verify and split the flower photos into ``out_dir``.

    ``source``: a URL, a tar/zip archive or a folder of class folders; None
    is :data:`DEFAULT_SOURCE_URL` or any split already in ``out_dir``. Only
    ``force`` replaces a split made otherwise. ``retries``, ``backoff`` and
    ``timeout`` (s) are the download's; ``logger`` is ``print_log``'s. The
    result's ``already_prepared``: nothing was written. Raises
    :class:`PreparationError` saying what is wrong and what to do.
    """
    try:
        ratio_ok = 0 < float(val_ratio) < 1
    except (TypeError, ValueError):
        ratio_ok = False
    if not ratio_ok or isinstance(seed, bool) or not isinstance(seed, int):
        raise PreparationError(
            'val_ratio must be between 0 and 1 (exclusive) and seed an '
            f'integer, not val_ratio={val_ratio!r}, seed={seed!r}')
    if not str(out_dir):
        raise PreparationError('out_dir must not be empty: give the folder '
                               'the split goes to, e.g. data/flower_dataset')
    out = Path(out_dir).expanduser().absolute()
    text = DEFAULT_SOURCE_URL if source is None else str(source)
    local = None
    if not re.match(r'^[A-Za-z][A-Za-z0-9+.-]*://', text):
        local = Path(text).expanduser().absolute()
        if not local.exists():
            raise PreparationError(
                f'source not found: {text}. Pass a URL, a .tgz/.tar/.zip '
                'archive or a folder with one sub-folder per class (or '
                'nothing, to download the TensorFlow flower_photos.tgz)')
        if local.is_dir():
            _check_no_overlap(local, out)
    if out.exists() and not out.is_dir():
        raise PreparationError(f'{out} exists and is not a folder')
    kind = 'url' if local is None else 'folder' if local.is_dir() else \
        'archive'
    req = _Request(text, local, kind, source is None, out, seed,
                   float(val_ratio), logger)
    # The fast path writes and downloads nothing; unlocked, an incomplete
    # split may be another process's commit in progress.
    done = None if force else _existing_split(req, locked=False)
    if done is not None:
        return done
    out.mkdir(parents=True, exist_ok=True)
    # One preparation of a folder at a time (e.g. several training ranks),
    # on every OS; the lock goes with the process that held it.
    with FileLock(out / '.prepare.lock'):
        done = None if force else _existing_split(req, locked=True)
        if done is not None:
            return done
        for leftover in [*out.glob('.staging-*'), *out.glob('.old-*'),
                         *(out / EXTRACTED_DIR).glob('.tmp-*')]:
            shutil.rmtree(leftover, ignore_errors=True)  # interrupted runs
        if local is None:
            req.local = download_file(text, out / DOWNLOADS_DIR, retries,
                                      backoff, timeout, progress, logger,
                                      hint_out_dir=out)
            old = None if force else load_manifest(out)
            if old is not None:  # same settings, another URL: same data?
                return _done(req, old)
        return _build(req, progress, workers)


def _existing_split(req: _Request,
                    locked: bool) -> Optional[PreparationResult]:
    """The existing split if it is what was asked for; None if there is
    none, if a URL must be downloaded to tell, or (unlocked) if it is not
    complete yet. Raises if it was made otherwise."""
    m = load_manifest(req.out)
    if m is None:
        present = [n for n in SPLIT_ENTRIES if os.path.lexists(req.out / n)]
        if locked and present:
            raise PreparationError(
                f'{req.out} already contains {", ".join(present)} but no '
                'manifest.json: it was not made by this tool, or a run was '
                f'interrupted. {FORCE} replace it, or choose another --out')
        return None
    conflict = settings_conflict(req.out, m, req.seed, req.val_ratio)
    if conflict:
        raise PreparationError(conflict)
    if req.local is None and not req.any_source and m['source'] != req.source:
        return None
    return None if not locked and missing_files(req.out) else _done(req, m)


def _done(req: _Request, m: dict) -> PreparationResult:
    """The split of manifest ``m``, if made from the data asked for."""
    if req.local is not None and req.sha256 != m['source_sha256']:
        raise PreparationError(
            f'{req.out} already holds a split made from {m["source"]} (sha256 '
            f'{m["source_sha256"][:12]}...), not from {req.source} (sha256 '
            f'{req.sha256[:12]}...). {FORCE} replace it, or choose another '
            '--out')
    check_complete(req.out)
    log(f'{req.out} is already prepared (seed {req.seed}, val ratio '
        f'{req.val_ratio}, from {m["source"]}); nothing to do', req.logger)
    return PreparationResult.from_manifest(req.out, m)


def _check_no_overlap(src: Path, out_dir: Path) -> None:
    src_r, out_r = src.resolve(), out_dir.resolve()
    if out_r.is_relative_to(src_r):
        raise PreparationError(
            f'the output folder {out_dir} is inside the source folder '
            f'{src}; choose an --out outside it')
    if src_r.is_relative_to(out_r) and not any(
            src_r.is_relative_to(out_r / d)
            for d in (EXTRACTED_DIR, DOWNLOADS_DIR)):
        raise PreparationError(
            f'the source folder {src} is inside the output folder '
            f'{out_dir}; choose another --out')


def _build(req: _Request, progress: bool,
           workers: Optional[int]) -> PreparationResult:
    """Extract, scan, verify, split and write; returns what was written."""
    out, root, rejected, ignored = req.out, req.local, [], []
    if not root.is_dir():
        root, rejected, ignored = extract_once(req.local, req.sha256,
                                               out / EXTRACTED_DIR, progress,
                                               req.logger)
        rejected = [dict(r, **{'class': ''}) for r in rejected]
        ignored = list(ignored)
    kept, bad = verify(scan(root, ignored), workers or decode_workers(),
                       progress)
    rejected = bad + rejected
    for cls in FLOWER_CLASSES:
        if not any(i.cls == cls for i in kept):
            mine = [r for r in bad if r['class'] == cls]
            why = '; '.join(f'{r["path"]}: {r["reason"]}' for r in mine[:3])
            found = (f'all {len(mine)} file(s) in it were rejected ({why}'
                     f'{"; ..." if len(mine) > 3 else ""})'
                     if mine else 'its folder holds no files')
            raise PreparationError(
                f'class "{cls}" has no usable image in {root}: {found}. '
                'Every class needs images')
    parts = split(kept, req.seed, req.val_ratio)
    counts = {p: {c: len(parts[p][c]) for c in FLOWER_CLASSES}
              for p in parts}
    manifest = dict(
        format_version=FORMAT_VERSION, source=req.source,
        source_type=req.kind,
        source_file=_relative(req.local, out), source_sha256=req.sha256,
        source_root=_relative(root, out), seed=req.seed,
        val_ratio=req.val_ratio, split_rule=SPLIT_RULE,
        classes=list(FLOWER_CLASSES), counts=counts,
        totals={p: sum(counts[p].values()) for p in counts},
        rejected=rejected, ignored=ignored)
    write_split(out, parts, manifest, root, progress)
    log(f'Wrote {manifest["totals"]["train"]} train and '
        f'{manifest["totals"]["val"]} val images to {out} (seed {req.seed}, '
        f'val ratio {req.val_ratio}); {len(rejected)} file(s) rejected, see '
        f'{out / REPORT_NAME}', req.logger)
    return PreparationResult.from_manifest(out, manifest, False)


def _relative(path: Path, out_dir: Path) -> str:
    """Paths under out_dir are stored relative to it (the split can move)."""
    return path.relative_to(out_dir).as_posix() if path.is_relative_to(
        out_dir) else str(path)
