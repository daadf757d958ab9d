"""The split on disk: deterministic train/val folders, swapped in atomically,
and the manifest.json that says what they were made from."""
import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from ..categories import FLOWER_CLASSES
from ..split_layout import (CLASSES_FILE, MANIFEST_NAME, SPLITS,
                            FlowerDataError, format_list_line, list_file,
                            read_split_list)
from .common import (DEFAULT_OUT_DIR, DEFAULT_SEED, DEFAULT_VAL_RATIO,
                     PreparationError, progress)
from .verify import Image

FORMAT_VERSION = 1
FORCE = 'Pass --force (force=True) to'
REPORT_NAME = 'rejected.txt'
SPLIT_ENTRIES = (*SPLITS, CLASSES_FILE, *map(list_file, SPLITS), REPORT_NAME,
                 MANIFEST_NAME)  # manifest.json last
SPLIT_RULE = (
    'per class, images are ordered by sha256("<seed>:<sha256 of the file>") '
    '(hex); the first max(1, min(n - 1, int(n * val_ratio + 0.5))) go to val '
    '(none when n < 2), the rest to train')


def val_count(n: int, val_ratio: float) -> int:
    """How many of a class's ``n`` images go to val (see ``SPLIT_RULE``)."""
    return 0 if n < 2 else max(1, min(n - 1, int(n * val_ratio + 0.5)))


def split(images: List[Image], seed: int,
          val_ratio: float) -> Dict[str, Dict[str, List[Image]]]:
    """``{'train'|'val': {class: images}}`` following ``SPLIT_RULE``."""
    out = {name: {} for name in SPLITS}
    for cls in FLOWER_CLASSES:
        mine = sorted((i for i in images if i.cls == cls),
                      key=lambda i: (hashlib.sha256(
                          f'{seed}:{i.sha256}'.encode()).hexdigest(),
                                     os.fsencode(i.relpath)))
        n_val = val_count(len(mine), val_ratio)
        out['val'][cls], out['train'][cls] = mine[:n_val], mine[n_val:]
    return out


def _output_name(name: str, sha: str, taken: set) -> str:
    """The file name in the split: spaces replaced, clashes made unique."""
    stem, ext = os.path.splitext(name)
    stem = re.sub(r'\s+', '_', stem.strip()) or sha[:16]
    try:
        (stem + ext).encode('utf-8')
    except UnicodeEncodeError:  # undecodable bytes in the source's name
        stem = sha[:16]
    if (stem + ext).casefold() in taken:
        stem = f'{stem}-{sha[:8]}'
    taken.add((stem + ext).casefold())
    return stem + ext


def _write_lines(path: Path, lines: List[str]) -> None:
    path.write_text(''.join(line + '\n' for line in lines), encoding='utf-8')


def _report(manifest: Dict, source_root: Path) -> List[str]:
    lines = [
        '# flower-mm data preparation report',
        f'# source: {manifest["source"]}',
        f'# source sha256: {manifest["source_sha256"]}',
        f'# paths are relative to: {source_root}',
        '# (refused archive members are named as in the archive)',
    ]
    for key, what in (('rejected', 'not in the split, left where they are'),
                      ('ignored', 'not images of a class')):
        lines.append(f'# {key} ({what}): {len(manifest[key])}')
        lines += [f'{r["path"]}\t{r["reason"]}' for r in manifest[key]]
    return lines


def write_split(out_dir: Path, parts: Dict, manifest: Dict, source_root: Path,
                progress_bar: bool) -> None:
    """Write the split into a staging folder, then swap it in.

    manifest.json goes first out and last in: a split without it is never
    taken as complete, so an interrupted swap is found by the next run.
    """
    staging = Path(tempfile.mkdtemp(prefix='.staging-', dir=out_dir))
    old = Path(tempfile.mkdtemp(prefix='.old-', dir=out_dir))
    jobs = [(name, label, cls, image) for name in SPLITS
            for label, cls in enumerate(FLOWER_CLASSES)
            for image in sorted(parts[name][cls],
                                key=lambda i: os.fsencode(i.relpath))]
    lines = {name: [] for name in SPLITS}
    taken = {(n, c): set() for n in lines for c in FLOWER_CLASSES}
    try:
        for name, cls in taken:
            (staging / name / cls).mkdir(parents=True)
        for name, label, cls, image in progress(jobs, progress_bar,
                                                'Copying images', len(jobs)):
            out = _output_name(image.path.name, image.sha256,
                               taken[name, cls])
            shutil.copyfile(image.path, staging / name / cls / out)
            lines[name].append(format_list_line(f'{cls}/{out}', label))
        for name in lines:
            _write_lines(staging / list_file(name), lines[name])
        _write_lines(staging / CLASSES_FILE, list(FLOWER_CLASSES))
        _write_lines(staging / REPORT_NAME, _report(manifest, source_root))
        (staging / MANIFEST_NAME).write_text(
            json.dumps(manifest, indent=2, ensure_ascii=False) + '\n',
            encoding='utf-8')
        for name in (MANIFEST_NAME, ) + SPLIT_ENTRIES[:-1]:
            if os.path.lexists(out_dir / name):
                os.replace(out_dir / name, old / name)
        for name in SPLIT_ENTRIES:
            os.replace(staging / name, out_dir / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


@dataclass
class PreparationResult:
    """What :func:`prepare_flowers` did, or found done (``already_prepared``).

    ``rejected``/``ignored``: ``{'path', 'reason'[, 'class']}``, relative to
    ``source_root`` (refused archive members: their names in the archive).
    """
    out_dir: Path
    classes: Tuple[str, ...]
    counts: Dict[str, Dict[str, int]]  # {'train'|'val': {class: n}}
    seed: int
    val_ratio: float
    source: str
    source_sha256: str
    rejected: List[Dict[str, str]] = field(default_factory=list)
    ignored: List[Dict[str, str]] = field(default_factory=list)
    source_root: Optional[Path] = None
    already_prepared: bool = False

    @property
    def report_path(self) -> Path:
        return self.out_dir / REPORT_NAME

    @classmethod
    def from_manifest(cls, out_dir: Path, m: Dict, already_prepared=True):
        root = m.get('source_root')
        return cls(out_dir, tuple(m['classes']), m['counts'], m['seed'],
                   m['val_ratio'], m['source'], m['source_sha256'],
                   m.get('rejected', []), m.get('ignored', []),
                   None if root is None else out_dir / root, already_prepared)


def load_manifest(out_dir: Path) -> Optional[Dict]:
    path = out_dir / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding='utf-8'))
        manifest['counts']['train'], manifest['seed']  # noqa: B018
    except (ValueError, KeyError, TypeError) as e:
        raise PreparationError(f'{path} is not a valid manifest ({e}). '
                               f'{FORCE} prepare the split again') from e
    return manifest


def settings_conflict(out_dir: Path, m: Dict, seed: int,
                      val_ratio: float) -> Optional[str]:
    if m['seed'] == seed and abs(float(m['val_ratio']) - val_ratio) < 1e-9:
        return None
    return (f'{out_dir} already holds a split made with seed={m["seed"]}, '
            f'val_ratio={m["val_ratio"]} (from {m["source"]}); you asked for '
            f'seed={seed}, val_ratio={val_ratio}. {FORCE} overwrite it, or '
            'choose another --out')


def missing_files(out_dir: Path) -> List[str]:
    """Files of the split that its lists name but the disk lacks."""
    for name in (CLASSES_FILE, *map(list_file, SPLITS)):
        if not (out_dir / name).is_file():
            return [name]
    return [
        f'{name}/{rel}' for name in SPLITS
        for rel, _ in read_split_list(out_dir / list_file(name))
        if not (out_dir / name / rel).is_file()
    ]


def check_complete(out_dir: Path) -> None:
    missing = missing_files(out_dir)
    if missing:
        raise PreparationError(
            f'the split in {out_dir} is incomplete: {len(missing)} listed '
            f'file(s) are missing (e.g. {missing[0]}). {FORCE} prepare it '
            'again')


def is_prepared(out_dir=DEFAULT_OUT_DIR, val_ratio: float = DEFAULT_VAL_RATIO,
                seed: int = DEFAULT_SEED) -> bool:
    """Whether ``out_dir`` holds a complete split made with these settings
    (reads only; never downloads or writes)."""
    out_dir = Path(out_dir)
    try:
        m = load_manifest(out_dir)
        return m is not None and not settings_conflict(
            out_dir, m, seed, val_ratio) and not missing_files(out_dir)
    except (PreparationError, FlowerDataError):  # a damaged manifest or list
        return False
