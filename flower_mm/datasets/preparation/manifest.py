"""manifest.json: what a split was made from, and whether it is complete."""
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from ...utils.table import format_table
from .common import (DEFAULT_OUT_DIR, DEFAULT_SEED, DEFAULT_VAL_RATIO,
                     PreparationError)
from .split import MANIFEST_NAME, REPORT_NAME

FORMAT_VERSION = 1
FORCE = 'Pass --force (force=True) to'


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
    def manifest_path(self) -> Path:
        return self.out_dir / MANIFEST_NAME

    @property
    def report_path(self) -> Path:
        return self.out_dir / REPORT_NAME

    def summary(self) -> str:
        """A per-class table of train/val/rejected counts."""
        rejected = {c: 0 for c in self.classes}
        for item in self.rejected:
            if item.get('class') in rejected:
                rejected[item['class']] += 1
        rows = [(c, self.counts['train'].get(c, 0),
                 self.counts['val'].get(c, 0), rejected[c])
                for c in self.classes]
        other = len(self.rejected) - sum(rejected.values())
        if other:
            rows.append(('(archive)', '', '', other))
        rows.append(('total', sum(self.counts['train'].values()),
                     sum(self.counts['val'].values()), len(self.rejected)))
        return format_table(('class', 'train', 'val', 'rejected'), rows)

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
    for name in ('classes.txt', 'train.txt', 'val.txt'):
        if not (out_dir / name).is_file():
            return [name]
    return [
        f'{name}/{rel}' for name in ('train', 'val')
        for rel in (line.rsplit(' ', 1)[0] for line in (
            out_dir / f'{name}.txt').read_text(encoding='utf-8').splitlines())
        if rel and not (out_dir / name / rel).is_file()
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
    except PreparationError:
        return False
    return m is not None and not settings_conflict(
        out_dir, m, seed, val_ratio) and not missing_files(out_dir)
