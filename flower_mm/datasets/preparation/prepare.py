"""The entry point: source -> verified, reproducible train/val folders."""
import fcntl
import hashlib
import os
import re
import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

from ..categories import FLOWER_CLASSES
from .archive import extract_once
from .common import (DEFAULT_OUT_DIR, DEFAULT_SEED, DEFAULT_SOURCE_URL,
                     DEFAULT_VAL_RATIO, Logger, PreparationError,
                     ignored_reason, log, sha256_file)
from .download import download_file
from .manifest import (FORMAT_VERSION, PreparationResult, absolute_root,
                       check_complete, load_manifest, missing_files,
                       relative_or_absolute, result_from_manifest,
                       settings_conflict)
from .split import SPLIT_ENTRIES, SPLIT_RULE, split, write_split
from .verify import scan, verify

DOWNLOADS_DIR = 'downloads'
EXTRACTED_DIR = 'extracted'


@dataclass
class PrepareSettings:
    """One preparation request, as :func:`prepare_flowers` received it."""
    source: str  # the URL or path as given (DEFAULT_SOURCE_URL for None)
    local: Optional[Path]  # the file or folder, None for a URL
    any_source: bool  # no source given: any existing split will do
    out_dir: Path
    val_ratio: float
    seed: int
    force: bool = False
    progress: bool = True
    logger: Logger = None
    workers: Optional[int] = None
    retries: int = 3
    backoff: float = 1.0
    timeout: float = 60.0
    _sha256: str = ''

    def source_sha256(self) -> str:
        """SHA-256 of the local source (computed once)."""
        if not self._sha256:
            self._sha256 = _tree_sha256(self.local) if self.local.is_dir() \
                else sha256_file(self.local)
        return self._sha256


def prepare_flowers(source=None,
                    out_dir=DEFAULT_OUT_DIR,
                    val_ratio: float = DEFAULT_VAL_RATIO,
                    seed: int = DEFAULT_SEED,
                    force: bool = False,
                    progress: bool = True,
                    logger: Logger = None,
                    workers: Optional[int] = None,
                    retries: int = 3,
                    backoff: float = 1.0,
                    timeout: float = 60.0) -> PreparationResult:
    """Download, verify and split the flower photos into ``out_dir``.

    Args:
        source: A URL, a ``.tgz``/``.tar``/``.zip`` archive or a folder with
            one sub-folder per class (directly or under one top folder).
            None means :data:`DEFAULT_SOURCE_URL`, and also accepts an
            existing split in ``out_dir`` whatever it was made from.
        out_dir: Where the split goes; everything is written under it.
        val_ratio: Share of each class that goes to val, in (0, 1).
        seed: Selects which images go to val; same seed, same split.
        force: Rebuild, even over a split made with other settings or from
            another source (refused by default).
        progress: Show progress bars (on stderr).
        logger: For :func:`mmengine.logging.print_log` (None prints,
            ``'current'`` logs to the current MMLogger, ``'silent'``).
        workers: Threads that decode images (default: up to 8).
        retries, backoff, timeout: Download retries, the first wait between
            them (doubled each time) and the socket time-out, in seconds.

    Returns:
        PreparationResult; ``already_prepared`` is True when the split was
        there with the same source, seed and ratio and nothing was written
        (for a URL, "same" is the same URL: nothing is downloaded).

    Raises:
        PreparationError: naming the path, URL or class at fault and what
            to do.
    """
    try:
        ratio_ok = 0 < float(val_ratio) < 1
    except (TypeError, ValueError):
        ratio_ok = False
    if not ratio_ok:
        raise PreparationError(
            f'val_ratio must be between 0 and 1 (exclusive), not {val_ratio}')
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise PreparationError(f'seed must be an integer, not {seed!r}')
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
    s = PrepareSettings(text, local, source is None, out, float(val_ratio),
                        seed, force, progress, logger, workers, retries,
                        backoff, timeout)
    if not force:  # the fast path: writes nothing, downloads nothing
        done = _existing_split(s, locked=False)
        if done is not None:
            return done
    out.mkdir(parents=True, exist_ok=True)
    with _file_lock(out):
        return _prepare_locked(s)


@contextmanager
def _file_lock(out_dir: Path):
    """Serialise preparations of one folder (e.g. several training ranks)."""
    with open(out_dir / '.prepare.lock', 'a') as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _other_source(s: PrepareSettings, m: Dict) -> PreparationError:
    return PreparationError(
        f'{s.out_dir} already holds a split made from {m["source"]} (sha256 '
        f'{m["source_sha256"][:12]}...), not from {s.source} (sha256 '
        f'{s.source_sha256()[:12]}...). Pass --force (force=True) to replace '
        'it, or choose another --out')


def _existing_split(s: PrepareSettings,
                    locked: bool) -> Optional[PreparationResult]:
    """The existing split if it is what was asked for; None if there is
    none, or if a URL has to be downloaded to tell. Unlocked, an incomplete
    split may be another process's commit in progress: None then too."""
    m = load_manifest(s.out_dir)
    if m is None:
        return None
    conflict = settings_conflict(s.out_dir, m, s.seed, s.val_ratio)
    if conflict:
        raise PreparationError(conflict)
    if s.any_source or (s.local is None and m['source'] == s.source) or (
            s.local is not None
            and s.source_sha256() == m['source_sha256']):
        if not locked and missing_files(s.out_dir):
            return None
        check_complete(s.out_dir, m)
        log(f'{s.out_dir} is already prepared (seed {s.seed}, val ratio '
            f'{s.val_ratio}, from {m["source"]}); nothing to do', s.logger)
        return result_from_manifest(s.out_dir, m)
    if s.local is not None:
        raise _other_source(s, m)
    return None


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


def _prepare_locked(s: PrepareSettings) -> PreparationResult:
    out = s.out_dir
    if not s.force:
        # Another process may have finished it while we waited for the lock.
        done = _existing_split(s, locked=True)
        if done is not None:
            return done
        present = [n for n in SPLIT_ENTRIES if os.path.lexists(out / n)]
        if present and load_manifest(out) is None:
            raise PreparationError(
                f'{out} already contains {", ".join(present)} but no '
                'manifest.json: it was not made by this tool, or a run was '
                'interrupted. Pass --force (force=True) to replace it, or '
                'choose another --out')
    for leftover in [*out.glob('.staging-*'), *out.glob('.old-*'),
                     *(out / EXTRACTED_DIR).glob('.tmp-*')]:
        shutil.rmtree(leftover, ignore_errors=True)  # of interrupted runs

    # 1. The source on disk, identified by its SHA-256.
    if s.local is None:
        s.local = download_file(s.source, out / DOWNLOADS_DIR, s.retries,
                                s.backoff, s.timeout, s.progress, s.logger,
                                hint_out_dir=out)
        source_type = 'url'
    else:
        source_type = 'folder' if s.local.is_dir() else 'archive'
    old = None if s.force else load_manifest(out)
    if old is not None:  # same settings, another URL: compare the contents
        if old['source_sha256'] != s.source_sha256():
            raise _other_source(s, old)
        check_complete(out, old)
        log(f'{out} is already prepared from the same data; nothing to do',
            s.logger)
        return result_from_manifest(out, old)

    # 2. Extracted, scanned and verified.
    rejected: List[Dict[str, str]] = []
    ignored: List[Dict[str, str]] = []
    root = s.local
    if not root.is_dir():
        root, rejected, ignored = extract_once(s.local, s.source_sha256(),
                                               out / EXTRACTED_DIR,
                                               s.progress, s.logger)
        rejected = [dict(r, **{'class': ''}) for r in rejected]
        ignored = list(ignored)
    kept, bad = verify(
        scan(root, ignored), s.workers or min(8, os.cpu_count() or 1),
        s.progress)
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

    # 3. Split and written atomically.
    parts = split(kept, s.seed, s.val_ratio)
    counts = {p: {c: len(parts[p][c]) for c in FLOWER_CLASSES}
              for p in ('train', 'val')}
    manifest = {
        'format_version': FORMAT_VERSION,
        'source': s.source,
        'source_type': source_type,
        'source_file': relative_or_absolute(s.local, out),
        'source_sha256': s.source_sha256(),
        'source_root': relative_or_absolute(root, out),
        'seed': s.seed,
        'val_ratio': s.val_ratio,
        'split_rule': SPLIT_RULE,
        'classes': list(FLOWER_CLASSES),
        'counts': counts,
        'totals': {p: sum(counts[p].values()) for p in counts},
        'rejected': rejected,
        'ignored': ignored,
    }
    write_split(out, parts, manifest, absolute_root(manifest, out),
                s.progress)
    log(f'Wrote {manifest["totals"]["train"]} train and '
        f'{manifest["totals"]["val"]} val images to {out} (seed {s.seed}, '
        f'val ratio {s.val_ratio}); {len(rejected)} file(s) rejected, see '
        f'{out / "rejected.txt"}', s.logger)
    return result_from_manifest(out, manifest, already_prepared=False)


def _tree_sha256(folder: Path) -> str:
    """SHA-256 over the sorted "<relative path>\\0<sha256>\\n" of a folder's
    files, leaving out what is never read (hidden files, ``__MACOSX``)."""
    entries = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if ignored_reason(d) is None]
        entries += [(os.fsencode(
            (Path(dirpath) / n).relative_to(folder).as_posix()),
                     Path(dirpath) / n) for n in filenames
                    if ignored_reason(n) is None]
    h = hashlib.sha256()
    for key, path in sorted(entries):
        try:
            digest = sha256_file(path)
        except OSError:
            digest = 'unreadable'
        h.update(key + b'\0' + digest.encode() + b'\n')
    return h.hexdigest()
