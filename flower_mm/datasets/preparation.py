"""Turn a public flower archive into verified, reproducible train/val folders.

The one entry point is :func:`prepare_flowers`. It takes a URL, a local
archive (``.tgz``/``.tar``/``.zip``...) or an extracted folder with one
sub-folder per class, and writes::

    <out_dir>/
        train/<class>/<image>      val/<class>/<image>
        classes.txt                one class per line, label = line index
        train.txt  val.txt         "<class>/<image> <label>" lines, relative
                                   to the train/ and val/ folders
        manifest.json              source, its SHA-256, seed, ratio, counts,
                                   rejected and ignored files
        rejected.txt               the same report, readable
        downloads/                 cache of downloaded archives (URL sources)
        extracted/<name>-<sha12>/  extracted archives (archive sources);
                                   rejected files stay here, untouched
        extracted/<name>-<sha12>.json  what extraction refused or skipped

Nothing is written outside ``out_dir``, and nothing in the source is moved
or deleted. See ``docs/data_preparation.md`` for the user documentation.
"""
import contextlib
import hashlib
import http.client
import io
import json
import os
import os.path as osp
import posixpath
import re
import shutil
import socket
import stat
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Tuple, Union

__all__ = [
    'CLASSES', 'CLASS_ALIASES', 'DEFAULT_SOURCE_URL', 'DEFAULT_URL',
    'DEFAULT_OUT_DIR', 'DEFAULT_VAL_RATIO', 'DEFAULT_SEED', 'IMG_EXTENSIONS',
    'PreparationError', 'PreparationResult', 'prepare_flowers',
    'download_file', 'extract_archive', 'normalise_class_name', 'is_prepared',
    'sha256_file', 'val_count'
]

#: The five classes, in label order (label = index).
CLASSES: Tuple[str, ...] = ('daisy', 'dandelion', 'rose', 'sunflower', 'tulip')
#: Folder names accepted for each class (compared case-insensitively).
CLASS_ALIASES: Dict[str, str] = {
    'daisy': 'daisy', 'daisies': 'daisy',
    'dandelion': 'dandelion', 'dandelions': 'dandelion',
    'rose': 'rose', 'roses': 'rose',
    'sunflower': 'sunflower', 'sunflowers': 'sunflower',
    'tulip': 'tulip', 'tulips': 'tulip',
}  # yapf: disable
#: TensorFlow's flower_photos.tgz (3,670 images).
DEFAULT_SOURCE_URL = ('https://storage.googleapis.com/download.tensorflow.org/'
                      'example_images/flower_photos.tgz')
DEFAULT_URL = DEFAULT_SOURCE_URL
DEFAULT_OUT_DIR = 'data/flower_dataset'
DEFAULT_VAL_RATIO = 0.2
DEFAULT_SEED = 0
#: The extensions MMPretrain's CustomDataset reads by default.
IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif')

FORMAT_VERSION = 1
MANIFEST_NAME = 'manifest.json'
REPORT_NAME = 'rejected.txt'
DOWNLOADS_DIR = 'downloads'
EXTRACTED_DIR = 'extracted'
SPLIT_ENTRIES = ('train', 'val', 'classes.txt', 'train.txt', 'val.txt',
                 REPORT_NAME, MANIFEST_NAME)
SPLIT_RULE = (
    'per class, images are ordered by sha256("<seed>:<sha256 of the file>") '
    '(hex); the first max(1, min(n - 1, int(n * val_ratio + 0.5))) go to val '
    '(none when n < 2), the rest to train')
_LOCK_NAME = '.prepare.lock'
_ARCHIVE_SUFFIXES = ('.tar.gz', '.tar.bz2', '.tar.xz', '.tgz', '.tbz2', '.txz',
                     '.tar', '.zip')
_CHUNK = 1 << 20

Logger = Union[None, str, 'logging.Logger']  # noqa: F821


class PreparationError(RuntimeError):
    """The data could not be prepared; the message says why and what to do."""


@dataclass
class PreparationResult:
    """What :func:`prepare_flowers` did (or found already done)."""
    out_dir: Path
    classes: Tuple[str, ...]
    #: ``{'train': {class: n}, 'val': {class: n}}``
    counts: Dict[str, Dict[str, int]]
    seed: int
    val_ratio: float
    source: str
    source_sha256: str
    #: ``[{'path', 'reason', 'class'}]``; paths relative to ``source_root``
    #: (archive member names for members that were not extracted).
    rejected: List[Dict[str, str]] = field(default_factory=list)
    #: Files and folders that are not images of a class (``__MACOSX/``,
    #: hidden files, a LICENSE next to the class folders...).
    ignored: List[Dict[str, str]] = field(default_factory=list)
    #: The folder the images were read from (an extracted archive or the
    #: source folder itself).
    source_root: Optional[Path] = None
    #: True when the split already existed with these settings (no-op).
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
        other = 0
        for item in self.rejected:
            if item.get('class') in rejected:
                rejected[item['class']] += 1
            else:
                other += 1
        rows = [('class', 'train', 'val', 'rejected')]
        for c in self.classes:
            rows.append((c, str(self.counts['train'].get(c, 0)),
                         str(self.counts['val'].get(c, 0)), str(rejected[c])))
        if other:
            rows.append(('(archive)', '', '', str(other)))
        rows.append(
            ('total', str(sum(self.counts['train'].values())),
             str(sum(self.counts['val'].values())), str(len(self.rejected))))
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        lines = []
        for i, r in enumerate(rows):
            lines.append(
                '  '.join([r[0].ljust(widths[0])] +
                          [r[j].rjust(widths[j]) for j in range(1, 4)]))
            if i == 0 or i == len(rows) - 2:
                lines.append('  '.join('-' * w for w in widths))
        return '\n'.join(lines)


# --------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------
def _log(msg: str, logger: Logger = None) -> None:
    from mmengine.logging import print_log
    print_log(msg, logger=logger)


def normalise_class_name(name: str) -> Optional[str]:
    """Map a folder name to its canonical class (``roses`` -> ``rose``).

    Returns None for a name that is not a flower class.
    """
    return CLASS_ALIASES.get(name.strip().lower())


def val_count(n: int, val_ratio: float) -> int:
    """How many of a class's ``n`` images go to val (see ``SPLIT_RULE``)."""
    if n < 2:
        return 0
    return max(1, min(n - 1, int(n * val_ratio + 0.5)))


def sha256_file(path: Union[str, Path]) -> str:
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(_CHUNK), b''):
            h.update(chunk)
    return h.hexdigest()


def _is_url(source: str) -> bool:
    return re.match(r'^[A-Za-z][A-Za-z0-9+.-]*://', source) is not None


def _is_within(path: Path, parent: Path) -> bool:
    return path == parent or parent in path.parents


def _ignored_reason(name: str) -> Optional[str]:
    if name == '__MACOSX':
        return 'macOS metadata folder'
    if name.startswith('.'):
        return 'hidden file or folder'
    return None


def _split_member_name(name: str) -> List[str]:
    return [p for p in re.split(r'[\\/]+', name) if p not in ('', '.')]


def _unsafe_name_reason(name: str) -> Optional[str]:
    if name.startswith(('/', '\\')) or re.match(r'^[A-Za-z]:', name):
        return 'unsafe archive member: absolute path'
    if '..' in _split_member_name(name):
        return "unsafe archive member: '..' in its path"
    return None


def _archive_stem(path: Path) -> str:
    name = path.name
    for suffix in _ARCHIVE_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[:-len(suffix)] or 'archive'
    return path.stem or 'archive'


def _sort_key(relpath: str) -> bytes:
    return os.fsencode(relpath)


class _Progress:
    """A rich progress bar on stderr, or nothing when disabled."""

    def __init__(self,
                 enabled: bool,
                 description: str,
                 total: Optional[float],
                 unit_bytes: bool = False):
        self._bar = None
        if not enabled:
            return
        from rich.console import Console
        from rich.progress import (BarColumn, DownloadColumn,
                                   MofNCompleteColumn, Progress, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn,
                                   TransferSpeedColumn)
        columns = [TextColumn('{task.description}'), BarColumn()]
        if unit_bytes:
            columns += [DownloadColumn(), TransferSpeedColumn()]
        else:
            columns += [MofNCompleteColumn()]
        columns += [TimeElapsedColumn(), TimeRemainingColumn()]
        self._bar = Progress(*columns, console=Console(stderr=True))
        self._task = self._bar.add_task(description, total=total)

    def __enter__(self) -> '_Progress':
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.stop()

    def advance(self, n: float = 1) -> None:
        if self._bar is not None:
            self._bar.advance(self._task, n)

    def update(self, completed: float) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=completed)


@contextlib.contextmanager
def _file_lock(out_dir: Path) -> Iterator[None]:
    """Serialise preparations of one folder (e.g. several training ranks)."""
    try:
        import fcntl
    except ImportError:  # Windows: no lock, run as is.
        yield
        return
    with open(out_dir / _LOCK_NAME, 'a') as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


# --------------------------------------------------------------------------
# Download
# --------------------------------------------------------------------------
def _hand_download_hint(url: str, out_dir: Optional[Path]) -> str:
    name = posixpath.basename(urllib.parse.urlparse(url).path) or 'archive'
    out = f' --out {out_dir}' if out_dir is not None else ''
    return (f'Download it by hand (e.g. in a browser) and pass the file: '
            f'python tools/prepare_flowers.py /path/to/{name}{out}')


def download_file(url: str,
                  dest_dir: Union[str, Path],
                  retries: int = 3,
                  backoff: float = 1.0,
                  timeout: float = 60.0,
                  progress: bool = True,
                  logger: Logger = None,
                  hint_out_dir: Optional[Path] = None) -> Path:
    """Stream ``url`` into ``dest_dir/<name>`` and return the file's path.

    The data goes to ``<name>.part`` first and is renamed when complete, so
    an existing ``<name>`` is a complete earlier download and is reused.
    Transient errors (connection errors, time-outs, HTTP 5xx/408/429, a
    short read) are retried ``retries`` times, waiting ``backoff``, then
    twice as long, and so on.

    Raises:
        PreparationError: naming the URL and how to download it by hand.
    """
    dest_dir = Path(dest_dir)
    name = posixpath.basename(urllib.parse.urlparse(url).path) or 'download'
    dest = dest_dir / name
    if dest.is_file():
        _log(f'Using the cached download {dest}', logger)
        return dest
    dest_dir.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + '.part')
    last_error = ''
    for attempt in range(retries + 1):
        if attempt:
            wait = backoff * 2**(attempt - 1)
            _log(
                f'Download failed ({last_error}); retrying in {wait:.3g} s '
                f'({attempt}/{retries})', logger)
            time.sleep(wait)
        try:
            _stream(url, part, timeout, progress)
            os.replace(part, dest)
            return dest
        except urllib.error.HTTPError as e:
            last_error = f'HTTP {e.code} {e.reason}'
            if not (e.code >= 500 or e.code in (408, 429)):
                break
        except (urllib.error.URLError, OSError, http.client.HTTPException,
                socket.timeout, _ShortRead) as e:
            reason = getattr(e, 'reason', None) or e
            last_error = f'{type(e).__name__}: {reason}' if not str(
                reason) else str(reason)
        finally:
            if part.exists():
                part.unlink()
    raise PreparationError(f'could not download {url}: {last_error}. ' +
                           _hand_download_hint(url, hint_out_dir))


class _ShortRead(Exception):
    pass


def _stream(url: str, part: Path, timeout: float, progress: bool) -> None:
    request = urllib.request.Request(
        url, headers={'User-Agent': 'flower-mm/prepare_flowers'})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        length = response.headers.get('Content-Length')
        total = int(length) if length and length.isdigit() else None
        received = 0
        desc = f'Downloading {posixpath.basename(part.name[:-5])}'
        with open(part, 'wb') as f, _Progress(progress, desc, total,
                                              True) as bar:
            for chunk in iter(lambda: response.read(_CHUNK), b''):
                f.write(chunk)
                received += len(chunk)
                bar.advance(len(chunk))
    if total is not None and received != total:
        raise _ShortRead(f'connection closed after {received} of {total} '
                         'bytes')


# --------------------------------------------------------------------------
# Safe extraction
# --------------------------------------------------------------------------
class _Extraction:

    def __init__(self, dest: Path):
        self.dest = dest
        self.rejected: List[Dict[str, str]] = []
        self.ignored: List[Dict[str, str]] = []
        self._ignored_seen = set()

    def classify(self, name: str) -> Optional[List[str]]:
        """Parts of a safe, wanted member name; None when refused/ignored."""
        reason = _unsafe_name_reason(name)
        if reason:
            self.rejected.append({'path': name, 'reason': reason})
            return None
        parts = _split_member_name(name)
        for i, part in enumerate(parts):
            reason = _ignored_reason(part)
            if reason:
                shown = '/'.join(
                    parts[:i + 1]) + ('/' if i + 1 < len(parts) else '')
                if shown not in self._ignored_seen:
                    self._ignored_seen.add(shown)
                    self.ignored.append({'path': shown, 'reason': reason})
                return None
        return parts or None

    def link_target(self, parts: List[str], linkname: str,
                    symlink: bool) -> Optional[str]:
        """The archive-relative target of a link, or None if it escapes."""
        if linkname.startswith(
            ('/', '\\')) or re.match(r'^[A-Za-z]:', linkname):
            return None
        base = posixpath.dirname('/'.join(parts)) if symlink else ''
        target = posixpath.normpath(
            posixpath.join(base, linkname.replace('\\', '/')))
        if target == '..' or target.startswith('../') or target == '.':
            return None
        return target

    def path_for(self, parts: List[str]) -> Path:
        path = self.dest.joinpath(*parts)
        real_dest = osp.realpath(self.dest)
        real = osp.realpath(path)
        if osp.commonpath([real_dest, real]) != real_dest:
            raise PreparationError(f'refusing to write outside {self.dest}')
        return path

    def write(self, parts: List[str], fileobj) -> None:
        path = self.path_for(parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink() or path.is_dir():
            raise OSError(f'{path} already exists as a folder or link')
        with open(path, 'wb') as f:
            shutil.copyfileobj(fileobj, f, _CHUNK)


def _extract_tar(archive: Path, ex: _Extraction, progress: bool) -> None:
    size = archive.stat().st_size
    with open(archive,
              'rb') as raw, _Progress(progress, f'Extracting {archive.name}',
                                      size, True) as bar:
        try:
            tf = tarfile.open(fileobj=raw, mode='r:*')
        except (tarfile.TarError, OSError, EOFError) as e:
            raise PreparationError(
                f'{archive} is not a readable tar archive ({e}); if it is a '
                'download, delete it and download it again') from e
        with tf:
            members: Dict[str, tarfile.TarInfo] = {}
            try:
                for m in tf:
                    _extract_tar_member(tf, m, ex, members)
                    bar.update(raw.tell())
            except (tarfile.TarError, EOFError, zlib.error) as e:
                raise PreparationError(
                    f'{archive} is corrupt or truncated ({e}); delete it and '
                    'download it again') from e


def _extract_tar_member(tf: tarfile.TarFile, m: tarfile.TarInfo,
                        ex: _Extraction, members: Dict) -> None:
    parts = ex.classify(m.name)
    if parts is None:
        return
    key = '/'.join(parts)
    if m.isdir():
        ex.path_for(parts).mkdir(parents=True, exist_ok=True)
        return
    if m.issym() or m.islnk():
        target = ex.link_target(parts, m.linkname, m.issym())
        if target is None:
            ex.rejected.append({
                'path':
                m.name,
                'reason':
                'unsafe archive member: link pointing outside the '
                f'archive (-> {m.linkname})'
            })
            return
        if target not in members:
            ex.rejected.append({
                'path':
                m.name,
                'reason':
                f'link to a file not in the archive (-> {target})'
            })
            return
        source_member = members[target]
    elif m.isreg():
        source_member = m
    else:
        ex.rejected.append({
            'path':
            m.name,
            'reason':
            'unsafe archive member: special file (device, FIFO)'
        })
        return
    try:
        fileobj = tf.extractfile(source_member)
        ex.write(parts, fileobj)
        members[key] = source_member
    except (OSError, KeyError) as e:
        ex.rejected.append({'path': m.name, 'reason': f'not extracted: {e}'})


def _extract_zip(archive: Path, ex: _Extraction, progress: bool) -> None:
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as e:
        raise PreparationError(
            f'{archive} is not a readable zip archive ({e}); if it is a '
            'download, delete it and download it again') from e
    with zf, _Progress(progress, f'Extracting {archive.name}',
                       len(zf.infolist())) as bar:
        names = {
            '/'.join(_split_member_name(i.filename)): i
            for i in zf.infolist()
        }
        for info in zf.infolist():
            bar.advance()
            parts = ex.classify(info.filename)
            if parts is None:
                continue
            if info.is_dir():
                ex.path_for(parts).mkdir(parents=True, exist_ok=True)
                continue
            mode = info.external_attr >> 16
            source_info = info
            if stat.S_ISLNK(mode):
                linkname = zf.read(info).decode('utf-8', 'replace')
                target = ex.link_target(parts, linkname, True)
                if target is None:
                    ex.rejected.append({
                        'path':
                        info.filename,
                        'reason':
                        'unsafe archive member: link pointing '
                        f'outside the archive (-> {linkname})'
                    })
                    continue
                source_info = names.get(target)
                if source_info is None or source_info.is_dir() or stat.S_ISLNK(
                        source_info.external_attr >> 16):
                    ex.rejected.append({
                        'path':
                        info.filename,
                        'reason':
                        f'link to a file not in the archive '
                        f'(-> {target})'
                    })
                    continue
            elif stat.S_IFMT(mode) and not stat.S_ISREG(mode):
                # (zip tools that do not record a file type leave it 0)
                ex.rejected.append({
                    'path':
                    info.filename,
                    'reason':
                    'unsafe archive member: special file (device, '
                    'FIFO)'
                })
                continue
            try:
                with zf.open(source_info) as fileobj:
                    ex.write(parts, fileobj)
            except (OSError, zipfile.BadZipFile, RuntimeError,
                    NotImplementedError) as e:
                # RuntimeError: encrypted member; BadZipFile: bad CRC.
                ex.rejected.append({
                    'path': info.filename,
                    'reason': f'not extracted: {e}'
                })


def extract_archive(archive: Union[str, Path],
                    dest: Union[str, Path],
                    progress: bool = True) -> Tuple[List, List]:
    """Extract a tar or zip archive into ``dest``, refusing unsafe members.

    Members with absolute paths, ``..`` components, links that point outside
    the archive, and devices/FIFOs are not extracted and come back as
    rejections; ``__MACOSX/`` and hidden files are skipped and come back as
    ignored. Links that stay inside the archive are written as copies.

    Returns:
        (rejected, ignored): lists of ``{'path', 'reason'}``.
    """
    archive, dest = Path(archive), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    ex = _Extraction(dest)
    if zipfile.is_zipfile(archive):
        _extract_zip(archive, ex, progress)
    elif _is_tar(archive):
        _extract_tar(archive, ex, progress)
    else:
        raise PreparationError(
            f'{archive} is neither a folder nor a tar/zip archive; pass a '
            'URL, a .tgz/.tar/.zip archive or a folder with one sub-folder '
            'per class')
    return ex.rejected, ex.ignored


def _is_tar(path: Path) -> bool:
    try:
        return tarfile.is_tarfile(path)
    except (OSError, EOFError):
        return False


def _extract_cached(archive: Path, sha: str, extracted_dir: Path,
                    progress: bool, logger: Logger) -> Tuple[Path, List, List]:
    """Extract once into ``extracted/<stem>-<sha12>``; reuse it afterwards."""
    dest = extracted_dir / f'{_archive_stem(archive)}-{sha[:12]}'
    marker = extracted_dir / f'{dest.name}.json'  # written once complete
    if marker.is_file():
        with open(marker, encoding='utf-8') as f:
            info = json.load(f)
        _log(f'Using the extracted archive {dest}', logger)
        return dest, info['rejected'], info['ignored']
    extracted_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix='.tmp-', dir=extracted_dir))
    try:
        rejected, ignored = extract_archive(archive, tmp, progress)
        if dest.exists():  # an unfinished earlier extraction of ours
            shutil.rmtree(dest)
        os.replace(tmp, dest)
        with open(marker, 'w', encoding='utf-8') as f:
            json.dump(
                {
                    'archive': str(archive),
                    'archive_sha256': sha,
                    'rejected': rejected,
                    'ignored': ignored
                },
                f,
                indent=2)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest, rejected, ignored


# --------------------------------------------------------------------------
# Scanning the class folders
# --------------------------------------------------------------------------
@dataclass
class _Candidate:
    cls: str
    path: Path
    relpath: str  # relative to the source root, POSIX


def _visible_entries(folder: Path, root: Path,
                     ignored: List[Dict[str, str]]) -> Tuple[List, List]:
    dirs, files = [], []
    for entry in sorted(os.scandir(folder), key=lambda e: os.fsencode(e.name)):
        rel = Path(entry.path).relative_to(root).as_posix()
        reason = _ignored_reason(entry.name)
        if reason:
            ignored.append({
                'path': rel + ('/' if entry.is_dir() else ''),
                'reason': reason
            })
        elif entry.is_dir():
            dirs.append(Path(entry.path))
        else:
            files.append(Path(entry.path))
    return dirs, files


def _find_class_dirs(root: Path,
                     ignored: List) -> Tuple[Path, Dict[str, Path]]:
    """Locate the folder holding the class folders (root or one level down)."""
    folder = root
    for _ in range(4):
        dirs, files = _visible_entries(folder, root, ignored)
        if any(normalise_class_name(d.name) for d in dirs) or len(dirs) != 1:
            break
        for f in files:
            ignored.append({
                'path': f.relative_to(root).as_posix(),
                'reason': 'not inside a class folder'
            })
        folder = dirs[0]
    expected = ', '.join(CLASSES)
    found = ', '.join(d.name for d in dirs) or 'no folders'
    if not any(normalise_class_name(d.name) for d in dirs):
        raise PreparationError(
            f'no class folders found in {folder} (found: {found}); expected '
            f'one folder per class: {expected} (plural names such as '
            '"roses" are accepted)')
    unknown = [d.name for d in dirs if normalise_class_name(d.name) is None]
    if unknown:
        raise PreparationError(
            'unknown class folder(s) ' + ', '.join(f'"{u}"' for u in unknown) +
            f' in {folder}; expected only {expected} (plural names such as '
            f'"roses" are accepted). Found: {found}. Move or rename the '
            'extra folders')
    class_dirs: Dict[str, Path] = {}
    for d in dirs:
        cls = normalise_class_name(d.name)
        if cls in class_dirs:
            raise PreparationError(
                f'folders "{class_dirs[cls].name}" and "{d.name}" in {folder} '
                f'are both class "{cls}"; merge them into one')
        class_dirs[cls] = d
    missing = [c for c in CLASSES if c not in class_dirs]
    if missing:
        raise PreparationError(
            'missing class folder(s) ' + ', '.join(f'"{m}"' for m in missing) +
            f' in {folder} (found: {found}); all of {expected} are needed')
    for f in files:
        ignored.append({
            'path': f.relative_to(root).as_posix(),
            'reason': 'not inside a class folder'
        })
    return folder, class_dirs


def _scan(root: Path, ignored: List) -> List[_Candidate]:
    _, class_dirs = _find_class_dirs(root, ignored)
    candidates = []
    for cls in CLASSES:
        for dirpath, dirnames, filenames in os.walk(class_dirs[cls]):
            here = Path(dirpath)
            for name in sorted(dirnames):
                reason = _ignored_reason(name)
                if reason is None and (here / name).is_symlink():
                    reason = 'symbolic link to a folder (not followed)'
                if reason:
                    dirnames.remove(name)
                    ignored.append({
                        'path':
                        (here / name).relative_to(root).as_posix() + '/',
                        'reason':
                        reason
                    })
            for name in filenames:
                path = here / name
                rel = path.relative_to(root).as_posix()
                reason = _ignored_reason(name)
                if reason:
                    ignored.append({'path': rel, 'reason': reason})
                else:
                    candidates.append(_Candidate(cls, path, rel))
    candidates.sort(key=lambda c: (CLASSES.index(c.cls), _sort_key(c.relpath)))
    return candidates


# --------------------------------------------------------------------------
# Verification
# --------------------------------------------------------------------------
@dataclass
class _Checked:
    candidate: _Candidate
    sha256: str = ''
    pixel_sha256: str = ''
    reason: str = ''


def _check_image(c: _Candidate) -> _Checked:
    out = _Checked(c)
    ext = osp.splitext(c.path.name)[1].lower()
    if ext not in IMG_EXTENSIONS:
        out.reason = (f'not an image file: extension "{ext or "(none)"}" is '
                      f'not one of {" ".join(IMG_EXTENSIONS)}')
        return out
    try:
        data = c.path.read_bytes()
    except OSError as e:
        out.reason = f'cannot be read: {e.strerror or e}'
        return out
    if not data:
        out.reason = 'empty file (0 bytes)'
        return out
    out.sha256 = hashlib.sha256(data).hexdigest()
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()  # a full decode, not a header peek
            rgb = img.convert('RGB')
            h = hashlib.sha256(f'{rgb.width}x{rgb.height}:'.encode())
            h.update(rgb.tobytes())
            out.pixel_sha256 = h.hexdigest()
    except UnidentifiedImageError:
        out.reason = 'not a decodable image: unknown or damaged format'
        return out
    except Exception as e:  # PIL raises OSError, ValueError, SyntaxError...
        msg = str(e)
        if 'truncated' in msg.lower():
            out.reason = f'truncated image: {msg}'
        else:
            out.reason = f'corrupt image data: {msg}'
        return out
    import cv2
    import numpy as np
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if decoded is None or decoded.size == 0:
        out.reason = ('not decodable by OpenCV, which the training pipeline '
                      'reads images with')
    return out


@contextlib.contextmanager
def _strict_pil() -> Iterator[None]:
    from PIL import ImageFile
    old = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        yield
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = old


def _verify(candidates: List[_Candidate], workers: int,
            progress: bool) -> Tuple[List[_Checked], List[Dict[str, str]]]:
    accepted, rejected = [], []
    by_sha: Dict[str, str] = {}
    by_pixels: Dict[str, str] = {}
    with _strict_pil(), ThreadPoolExecutor(max(1, workers)) as pool, \
            _Progress(progress, 'Verifying images', len(candidates)) as bar:
        for checked in pool.map(_check_image, candidates):
            bar.advance()
            c = checked.candidate
            if not checked.reason:
                if checked.sha256 in by_sha:
                    checked.reason = (f'duplicate of {by_sha[checked.sha256]} '
                                      '(identical bytes)')
                elif checked.pixel_sha256 in by_pixels:
                    checked.reason = (
                        f'duplicate of {by_pixels[checked.pixel_sha256]} '
                        '(identical pixels)')
            if checked.reason:
                rejected.append({
                    'path': c.relpath,
                    'reason': checked.reason,
                    'class': c.cls
                })
                continue
            by_sha[checked.sha256] = c.relpath
            by_pixels[checked.pixel_sha256] = c.relpath
            accepted.append(checked)
    return accepted, rejected


# --------------------------------------------------------------------------
# Split and output
# --------------------------------------------------------------------------
def _split(accepted: List[_Checked], seed: int,
           val_ratio: float) -> Dict[str, Dict[str, List[_Checked]]]:
    split = {
        'train': {
            c: []
            for c in CLASSES
        },
        'val': {
            c: []
            for c in CLASSES
        }
    }
    for cls in CLASSES:
        items = [a for a in accepted if a.candidate.cls == cls]
        items.sort(key=lambda a: (hashlib.sha256(f'{seed}:{a.sha256}'.encode(
        )).hexdigest(), _sort_key(a.candidate.relpath)))
        n_val = val_count(len(items), val_ratio)
        split['val'][cls] = items[:n_val]
        split['train'][cls] = items[n_val:]
    return split


def _output_name(name: str, sha: str, taken: set) -> str:
    stem, ext = osp.splitext(name)
    stem = re.sub(r'\s+', '_', stem.strip()) or sha[:16]
    try:
        (stem + ext).encode('utf-8')
    except UnicodeEncodeError:
        stem = sha[:16]
    out = stem + ext
    if out.casefold() in taken:
        out = f'{stem}-{sha[:8]}{ext}'
    taken.add(out.casefold())
    return out


def _write_text(path: Path, lines: List[str]) -> None:
    with open(path, 'w', encoding='utf-8', newline='\n') as f:
        f.writelines(line + '\n' for line in lines)


def _report_lines(manifest: Dict, out_dir: Path) -> List[str]:
    source_root = manifest['source_root']
    if not osp.isabs(source_root):
        source_root = str(out_dir / source_root)
    lines = [
        '# flower-mm data preparation report',
        f'# source: {manifest["source"]}',
        f'# source sha256: {manifest["source_sha256"]}',
        f'# paths are relative to: {source_root}',
        '# (refused archive members are named as in the archive)',
        f'# rejected (not in the split, left where they are): '
        f'{len(manifest["rejected"])}',
    ]
    lines += [f'{r["path"]}\t{r["reason"]}' for r in manifest['rejected']]
    lines.append(f'# ignored (not images of a class): '
                 f'{len(manifest["ignored"])}')
    lines += [f'{r["path"]}\t{r["reason"]}' for r in manifest['ignored']]
    return lines


def _write_split(staging: Path, out_dir: Path, split: Dict, manifest: Dict,
                 progress: bool) -> None:
    total = sum(len(v) for s in split.values() for v in s.values())
    with _Progress(progress, 'Copying images', total) as bar:
        for name in ('train', 'val'):
            lines = []
            for label, cls in enumerate(CLASSES):
                folder = staging / name / cls
                folder.mkdir(parents=True)
                taken: set = set()
                items = sorted(
                    split[name][cls],
                    key=lambda a: _sort_key(a.candidate.relpath))
                for item in items:
                    out = _output_name(item.candidate.path.name, item.sha256,
                                       taken)
                    shutil.copyfile(item.candidate.path, folder / out)
                    lines.append(f'{cls}/{out} {label}')
                    bar.advance()
            _write_text(staging / f'{name}.txt', lines)
    _write_text(staging / 'classes.txt', list(CLASSES))
    _write_text(staging / REPORT_NAME, _report_lines(manifest, out_dir))
    with open(
            staging / MANIFEST_NAME, 'w', encoding='utf-8', newline='\n') as f:
        json.dump(manifest, f, indent=2, ensure_ascii=False)
        f.write('\n')


def _commit(staging: Path, out_dir: Path) -> None:
    """Swap the staged split in; manifest.json goes first out and last in.

    A split without manifest.json is never taken as complete, so an
    interruption here is detected by the next run.
    """
    old = Path(tempfile.mkdtemp(prefix='.old-', dir=out_dir))
    for name in (MANIFEST_NAME, ) + SPLIT_ENTRIES[:-1]:
        if osp.lexists(out_dir / name):
            os.replace(out_dir / name, old / name)
    for name in SPLIT_ENTRIES:  # manifest.json is last
        os.replace(staging / name, out_dir / name)
    shutil.rmtree(old, ignore_errors=True)


# --------------------------------------------------------------------------
# Existing splits
# --------------------------------------------------------------------------
def _load_manifest(out_dir: Path) -> Optional[Dict]:
    path = out_dir / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        with open(path, encoding='utf-8') as f:
            manifest = json.load(f)
        manifest['counts']['train'], manifest['seed']  # noqa: B018
    except (ValueError, KeyError, TypeError) as e:
        raise PreparationError(
            f'{path} is not a valid manifest ({e}); pass --force '
            '(force=True) to prepare the split again') from e
    return manifest


def _same_ratio(a: float, b: float) -> bool:
    return abs(float(a) - float(b)) < 1e-9


def _missing_split_files(out_dir: Path) -> List[str]:
    missing = []
    for name in ('classes.txt', 'train.txt', 'val.txt'):
        if not (out_dir / name).is_file():
            return [name]
    for name in ('train', 'val'):
        with open(out_dir / f'{name}.txt', encoding='utf-8') as f:
            for line in f:
                rel = line.rstrip('\n').rsplit(' ', 1)[0]
                if rel and not (out_dir / name / rel).is_file():
                    missing.append(f'{name}/{rel}')
    return missing


def _result_from_manifest(out_dir: Path, m: Dict) -> PreparationResult:
    root = m.get('source_root')
    if root is not None and not osp.isabs(root):
        root = out_dir / root
    return PreparationResult(
        out_dir=out_dir,
        classes=tuple(m['classes']),
        counts=m['counts'],
        seed=m['seed'],
        val_ratio=m['val_ratio'],
        source=m['source'],
        source_sha256=m['source_sha256'],
        rejected=m.get('rejected', []),
        ignored=m.get('ignored', []),
        source_root=Path(root) if root is not None else None,
        already_prepared=True)


def _settings_conflict(out_dir: Path, m: Dict, seed: int,
                       val_ratio: float) -> Optional[str]:
    if m['seed'] == seed and _same_ratio(m['val_ratio'], val_ratio):
        return None
    return (f'{out_dir} already holds a split made with seed={m["seed"]}, '
            f'val_ratio={m["val_ratio"]} (from {m["source"]}); you asked for '
            f'seed={seed}, val_ratio={val_ratio}. Pass --force (force=True) '
            'to overwrite it, or choose another --out')


def _check_complete(out_dir: Path, m: Dict) -> None:
    if m.get('format_version', 0) > FORMAT_VERSION:
        raise PreparationError(
            f'{out_dir / MANIFEST_NAME} was written by a newer flower-mm '
            f'(format {m["format_version"]}); update flower-mm or pass --force'
        )
    missing = _missing_split_files(out_dir)
    if missing:
        raise PreparationError(
            f'the split in {out_dir} is incomplete: {len(missing)} listed '
            f'file(s) are missing (e.g. {missing[0]}). Pass --force '
            '(force=True) to prepare it again')


def is_prepared(out_dir: Union[str, Path] = DEFAULT_OUT_DIR,
                val_ratio: float = DEFAULT_VAL_RATIO,
                seed: int = DEFAULT_SEED) -> bool:
    """Whether ``out_dir`` holds a complete split made with these settings.

    Reads only manifest.json and the lists; never downloads or writes.
    """
    out_dir = Path(out_dir)
    try:
        m = _load_manifest(out_dir)
        if m is None or _settings_conflict(out_dir, m, seed, val_ratio):
            return False
        _check_complete(out_dir, m)
    except PreparationError:
        return False
    return True


# --------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------
def prepare_flowers(source: Optional[Union[str, Path]] = None,
                    out_dir: Union[str, Path] = DEFAULT_OUT_DIR,
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
            existing split in ``out_dir`` whatever it was made from (so a
            split made from a hand-downloaded archive is used as is).
        out_dir: Where the split goes; everything is written under it.
        val_ratio: Share of each class that goes to val, in (0, 1).
        seed: Selects which images go to val; same seed, same split.
        force: Rebuild the split, even over one made with other settings or
            from another source (which is refused by default).
        progress: Show progress bars (on stderr).
        logger: Passed to :func:`mmengine.logging.print_log` (None prints,
            ``'current'`` logs to the current MMLogger, ``'silent'``).
        workers: Threads that decode images (default: up to 8).
        retries, backoff, timeout: Download retries, first wait between
            them (doubled each time) and the socket time-out, in seconds.

    Returns:
        PreparationResult. When the split already exists with the same
        source, seed and ratio it returns at once and writes nothing
        (``already_prepared`` is True); for a URL source "same" means the
        same URL, so nothing is downloaded.

    Raises:
        PreparationError: with a message naming the path, URL or class at
            fault and what to do.
    """
    try:
        ratio_ok = 0 < float(val_ratio) < 1
    except (TypeError, ValueError):
        ratio_ok = False
    if not ratio_ok:
        raise PreparationError(
            f'val_ratio must be between 0 and 1 (exclusive), not {val_ratio}')
    val_ratio = float(val_ratio)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise PreparationError(f'seed must be an integer, not {seed!r}')
    if not str(out_dir):
        raise PreparationError('out_dir must not be empty: give the folder '
                               'the split goes to, e.g. data/flower_dataset')
    out_dir = Path(out_dir).expanduser().absolute()
    any_source = source is None
    source = DEFAULT_SOURCE_URL if source is None else str(source)

    local: Optional[Path] = None
    if not _is_url(source):
        local = Path(source).expanduser().absolute()
        if not local.exists():
            raise PreparationError(
                f'source not found: {source}. Pass a URL, a .tgz/.tar/.zip '
                'archive or a folder with one sub-folder per class (or '
                'nothing, to download the TensorFlow flower_photos.tgz)')
        if local.is_dir():
            _check_no_overlap(local, out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise PreparationError(f'{out_dir} exists and is not a folder')

    ids: Dict[str, str] = {}  # the source's sha256, once computed
    if not force:  # fast path: writes nothing, downloads nothing
        done = _existing_split(out_dir, source, local, any_source, seed,
                               val_ratio, ids, logger, False)
        if done is not None:
            return done

    out_dir.mkdir(parents=True, exist_ok=True)
    with _file_lock(out_dir):
        return _prepare_locked(source, local, any_source, out_dir, val_ratio,
                               seed, force, progress, logger, workers, retries,
                               backoff, timeout, ids)


def _source_sha(local: Path, ids: Dict[str, str]) -> str:
    if 'sha256' not in ids:
        ids['sha256'] = (
            _tree_sha256(local) if local.is_dir() else sha256_file(local))
    return ids['sha256']


def _existing_split(out_dir: Path, source: str, local: Optional[Path],
                    any_source: bool, seed: int, val_ratio: float,
                    ids: Dict[str, str], logger: Logger,
                    locked: bool) -> Optional[PreparationResult]:
    """The existing split if it is what was asked for; None if there is
    none, or if a URL source has to be downloaded to tell.

    Without the lock, an incomplete split may be another process's commit
    in progress: None, so that the caller takes the lock and looks again.
    """
    m = _load_manifest(out_dir)
    if m is None:
        return None
    conflict = _settings_conflict(out_dir, m, seed, val_ratio)
    if conflict:
        raise PreparationError(conflict)
    if any_source or (local is None and m['source'] == source) or (
            local is not None
            and _source_sha(local, ids) == m['source_sha256']):
        if not locked and _missing_split_files(out_dir):
            return None
        _check_complete(out_dir, m)
        _log(
            f'{out_dir} is already prepared (seed {seed}, val ratio '
            f'{val_ratio}, from {m["source"]}); nothing to do', logger)
        return _result_from_manifest(out_dir, m)
    if local is not None:
        raise _other_source_error(out_dir, m, source, ids['sha256'])
    return None


def _other_source_error(out_dir: Path, m: Dict, source: str,
                        sha: str) -> PreparationError:
    return PreparationError(
        f'{out_dir} already holds a split made from {m["source"]} (sha256 '
        f'{m["source_sha256"][:12]}...), not from {source} (sha256 '
        f'{sha[:12]}...). Pass --force (force=True) to replace it, or choose '
        'another --out')


def _check_no_overlap(src: Path, out_dir: Path) -> None:
    src_r, out_r = src.resolve(), out_dir.resolve()
    if _is_within(out_r, src_r):
        raise PreparationError(
            f'the output folder {out_dir} is inside the source folder '
            f'{src}; choose an --out outside it')
    if _is_within(src_r,
                  out_r) and not (_is_within(src_r, out_r / EXTRACTED_DIR)
                                  or _is_within(src_r, out_r / DOWNLOADS_DIR)):
        raise PreparationError(
            f'the source folder {src} is inside the output folder '
            f'{out_dir}; choose another --out')


def _prepare_locked(source: str, local: Optional[Path], any_source: bool,
                    out_dir: Path, val_ratio: float, seed: int, force: bool,
                    progress: bool, logger: Logger, workers: Optional[int],
                    retries: int, backoff: float, timeout: float,
                    ids: Dict[str, str]) -> PreparationResult:
    if not force:
        # Another process may have finished it while we waited for the lock.
        done = _existing_split(out_dir, source, local, any_source, seed,
                               val_ratio, ids, logger, True)
        if done is not None:
            return done
        if _load_manifest(out_dir) is None:
            present = [n for n in SPLIT_ENTRIES if osp.lexists(out_dir / n)]
            if present:
                raise PreparationError(
                    f'{out_dir} already contains {", ".join(present)} but no '
                    f'{MANIFEST_NAME}: it was not made by this tool, or a run '
                    'was interrupted. Pass --force (force=True) to replace '
                    'it, or choose another --out')
    # Leftovers of interrupted runs (ours: the lock is held).
    for leftover in list(out_dir.glob('.staging-*')) + list(
            out_dir.glob('.old-*')) + list(
                (out_dir / EXTRACTED_DIR).glob('.tmp-*')):
        shutil.rmtree(leftover, ignore_errors=True)

    # 1. Get the source onto disk and identify it.
    if local is None:
        local = download_file(
            source,
            out_dir / DOWNLOADS_DIR,
            retries=retries,
            backoff=backoff,
            timeout=timeout,
            progress=progress,
            logger=logger,
            hint_out_dir=out_dir)
        source_type = 'url'
    else:
        source_type = 'folder' if local.is_dir() else 'archive'
    source_sha = _source_sha(local, ids)
    old = None if force else _load_manifest(out_dir)
    if old is not None:  # same settings, the URL differs: compare contents
        if old['source_sha256'] != source_sha:
            raise _other_source_error(out_dir, old, source, source_sha)
        _check_complete(out_dir, old)
        _log(
            f'{out_dir} is already prepared from the same data; nothing to '
            'do', logger)
        return _result_from_manifest(out_dir, old)

    # 2. Extract.
    rejected: List[Dict[str, str]] = []
    ignored: List[Dict[str, str]] = []
    if local.is_dir():
        root = local
    else:
        root, ex_rejected, ex_ignored = _extract_cached(
            local, source_sha, out_dir / EXTRACTED_DIR, progress, logger)
        rejected += [dict(r, **{'class': ''}) for r in ex_rejected]
        ignored += ex_ignored

    # 3. Find the classes and verify every image.
    candidates = _scan(root, ignored)
    accepted, bad = _verify(candidates, workers or min(8,
                                                       os.cpu_count() or 1),
                            progress)
    rejected = bad + rejected
    for cls in CLASSES:
        if not any(a.candidate.cls == cls for a in accepted):
            mine = [r for r in bad if r['class'] == cls]
            why = '; '.join(f'{r["path"]}: {r["reason"]}' for r in mine[:3])
            found = (f'all {len(mine)} file(s) in it were rejected ({why}'
                     f'{"; ..." if len(mine) > 3 else ""})'
                     if mine else 'its folder holds no files')
            raise PreparationError(
                f'class "{cls}" has no usable image in {root}: {found}. '
                'Every class needs images')

    # 4. Split and write, atomically.
    split = _split(accepted, seed, val_ratio)
    manifest = {
        'format_version': FORMAT_VERSION,
        'source': source,
        'source_type': source_type,
        'source_file': _relative_or_absolute(local, out_dir),
        'source_sha256': source_sha,
        'source_root': _relative_or_absolute(root, out_dir),
        'seed': seed,
        'val_ratio': val_ratio,
        'split_rule': SPLIT_RULE,
        'classes': list(CLASSES),
        'counts': {
            s: {
                c: len(split[s][c])
                for c in CLASSES
            }
            for s in ('train', 'val')
        },
        'totals': {
            s: sum(len(v) for v in split[s].values())
            for s in ('train', 'val')
        },
        'rejected': rejected,
        'ignored': ignored,
    }
    staging = Path(tempfile.mkdtemp(prefix='.staging-', dir=out_dir))
    try:
        _write_split(staging, out_dir, split, manifest, progress)
        _commit(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    result = _result_from_manifest(out_dir, manifest)
    result.already_prepared = False
    _log(
        f'Wrote {manifest["totals"]["train"]} train and '
        f'{manifest["totals"]["val"]} val images to {out_dir} (seed {seed}, '
        f'val ratio {val_ratio}); {len(rejected)} file(s) rejected, see '
        f'{out_dir / REPORT_NAME}', logger)
    return result


def _relative_or_absolute(path: Path, out_dir: Path) -> str:
    """Paths under out_dir are stored relative to it (the split can move)."""
    try:
        return path.relative_to(out_dir).as_posix()
    except ValueError:
        return str(path)


def _tree_sha256(folder: Path) -> str:
    """SHA-256 of a folder: over the sorted "<relative path>\\0<sha256>\\n".

    Hidden files and ``__MACOSX`` are left out, as they are not read.
    """
    entries = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if _ignored_reason(d) is None]
        for name in filenames:
            if _ignored_reason(name) is None:
                path = Path(dirpath) / name
                entries.append(
                    (_sort_key(path.relative_to(folder).as_posix()), path))
    h = hashlib.sha256()
    for key, path in sorted(entries):
        try:
            digest = sha256_file(path)
        except OSError:
            digest = 'unreadable'
        h.update(key + b'\0' + digest.encode() + b'\n')
    return h.hexdigest()
