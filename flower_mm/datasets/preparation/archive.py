"""Extract tar and zip archives on the standard library's own safety.

``tarfile``'s ``filter='data'`` refuses links that leave the target, device
files and FIFOs; ``zipfile`` never writes outside its target. What is added
here: absolute and ``..`` names are refused rather than rewritten, zip
symlinks are checked as tar's are, ``__MACOSX/`` and hidden files are
skipped, and every refused member is reported.
"""
import json
import os
import posixpath
import re
import shutil
import stat
import tarfile
import tempfile
import zipfile
import zlib
from pathlib import Path
from typing import Dict, List, Tuple

from .common import Logger, PreparationError, ignored_reason, log, progress

Report = List[Dict[str, str]]
_OUTSIDE = 'unsafe archive member: link pointing outside the archive (-> {})'
_SUFFIXES = ('.tar.gz', '.tar.bz2', '.tar.xz', '.tgz', '.tbz2', '.txz',
             '.tar', '.zip')


class _Members:
    """Sorts member names into refused, ignored and wanted."""

    def __init__(self) -> None:
        self.rejected: Report = []
        self.ignored: Report = []

    def refuse(self, name: str, reason: str) -> None:
        self.rejected.append({'path': name, 'reason': reason})

    def wanted(self, name: str) -> bool:
        parts = [p for p in re.split(r'[\\/]+', name) if p not in ('', '.')]
        if re.match(r'^([\\/]|[A-Za-z]:)', name):
            self.refuse(name, 'unsafe archive member: absolute path')
        elif '..' in parts:
            self.refuse(name, "unsafe archive member: '..' in its path")
        else:
            for i, part in enumerate(parts):
                reason = ignored_reason(part)
                if reason:
                    shown = '/'.join(parts[:i + 1]) + (
                        '/' if i + 1 < len(parts) else '')
                    if shown not in {x['path'] for x in self.ignored}:
                        self.ignored.append({'path': shown, 'reason': reason})
                    return False
            return bool(parts)
        return False


def _extract_tar(archive: Path, dest: Path, members: _Members,
                 bar) -> None:

    def data_filter(member: tarfile.TarInfo, path: str):
        bar.advance()
        if not members.wanted(member.name):
            return None
        try:
            return tarfile.data_filter(member, path)
        except (tarfile.AbsoluteLinkError,
                tarfile.LinkOutsideDestinationError):
            members.refuse(member.name, _OUTSIDE.format(member.linkname))
        except tarfile.SpecialFileError:
            members.refuse(
                member.name,
                'unsafe archive member: special file (device, FIFO)')
        except tarfile.FilterError as e:
            members.refuse(member.name, f'unsafe archive member: {e}')
        return None

    with tarfile.open(archive) as tf:
        for member in tf:
            try:
                tf.extract(member, dest, filter=data_filter)
            except (OSError, KeyError) as e:  # e.g. a link to nothing
                members.refuse(member.name, f'not extracted: {e}')


def _extract_zip(archive: Path, dest: Path, members: _Members,
                 bar) -> None:
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            bar.advance()
            if not members.wanted(info.filename):
                continue
            mode = info.external_attr >> 16
            source = info
            if stat.S_ISLNK(mode):  # zipfile would write the link's text
                link = zf.read(info).decode('utf-8', 'replace')
                target = posixpath.normpath(
                    posixpath.join(posixpath.dirname(info.filename), link))
                if link.startswith('/') or target.startswith('..'):
                    members.refuse(info.filename, _OUTSIDE.format(link))
                    continue
                source = zf.getinfo(target) if target in zf.namelist() \
                    else None
                if source is None or stat.S_ISLNK(source.external_attr >> 16):
                    members.refuse(info.filename,
                                   f'link to a file not in the archive '
                                   f'(-> {target})')
                    continue
            elif stat.S_IFMT(mode) and not (stat.S_ISREG(mode)
                                            or stat.S_ISDIR(mode)):
                members.refuse(
                    info.filename,
                    'unsafe archive member: special file (device, FIFO)')
                continue
            try:
                if source is info:
                    zf.extract(info, dest)
                else:  # an inner link becomes a copy of its target
                    (dest / info.filename).parent.mkdir(
                        parents=True, exist_ok=True)
                    with zf.open(source) as src, open(
                            dest / info.filename, 'wb') as out:
                        shutil.copyfileobj(src, out)
            except (OSError, zipfile.BadZipFile, RuntimeError,
                    NotImplementedError) as e:  # encrypted, bad CRC...
                members.refuse(info.filename, f'not extracted: {e}')


def extract_archive(archive, dest, progress_bar: bool = True
                    ) -> Tuple[Report, Report]:
    """Extract a tar or zip archive into ``dest``, refusing unsafe members.

    Returns:
        (rejected, ignored): lists of ``{'path', 'reason'}``.
    """
    archive, dest = Path(archive), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    members = _Members()
    if zipfile.is_zipfile(archive):
        extract, kind = _extract_zip, 'zip'
        with zipfile.ZipFile(archive) as zf:
            total = len(zf.infolist())
    elif _is_tar(archive):
        extract, kind, total = _extract_tar, 'tar', None
    else:
        raise PreparationError(
            f'{archive} is neither a folder nor a tar/zip archive; pass a '
            'URL, a .tgz/.tar/.zip archive or a folder with one sub-folder '
            'per class')
    try:
        with progress(progress_bar, f'Extracting {archive.name}',
                      total) as bar:
            extract(archive, dest, members, bar)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError,
            zlib.error) as e:
        raise PreparationError(
            f'{archive} is not a readable {kind} archive or is truncated '
            f'({e}); if it is a download, delete it and download it again'
        ) from e
    return members.rejected, members.ignored


def _is_tar(path: Path) -> bool:
    try:
        return tarfile.is_tarfile(path)
    except (OSError, EOFError):
        return False


def extract_once(archive: Path, sha: str, extracted_dir: Path,
                 progress_bar: bool,
                 logger: Logger) -> Tuple[Path, Report, Report]:
    """Extract into ``extracted/<stem>-<sha12>`` once; reuse it later."""
    stem = next((archive.name[:-len(s)] for s in _SUFFIXES
                 if archive.name.lower().endswith(s)), archive.stem)
    dest = extracted_dir / f'{stem or "archive"}-{sha[:12]}'
    marker = extracted_dir / f'{dest.name}.json'  # written once complete
    if marker.is_file():
        info = json.loads(marker.read_text(encoding='utf-8'))
        log(f'Using the extracted archive {dest}', logger)
        return dest, info['rejected'], info['ignored']
    extracted_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix='.tmp-', dir=extracted_dir))
    try:
        rejected, ignored = extract_archive(archive, tmp, progress_bar)
        if dest.exists():  # an unfinished earlier extraction of ours
            shutil.rmtree(dest)
        os.replace(tmp, dest)
        marker.write_text(
            json.dumps(dict(archive=str(archive), archive_sha256=sha,
                            rejected=rejected, ignored=ignored), indent=2),
            encoding='utf-8')
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest, rejected, ignored
