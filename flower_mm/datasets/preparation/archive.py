"""Extract tar and zip archives on the standard library's own safety.

``tarfile``'s ``data_filter`` refuses links leaving the target and special
files; ``zipfile`` never writes outside it. Added here: absolute and ``..``
names are refused (not rewritten), zip symlinks are checked like tar's,
``__MACOSX/`` and hidden files are skipped, and every refusal is reported.
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

from ...fileio import atomic_write_bytes
from .common import PreparationError, ignored_reason, log, progress

UNSAFE = 'unsafe archive member: '
OUTSIDE = UNSAFE + 'link pointing outside the archive (-> {})'
SPECIAL = UNSAFE + 'special file (device, FIFO)'


class _Members:
    """Sorts member names into refused, ignored and wanted."""

    def __init__(self) -> None:
        self.rejected, self.ignored = [], []

    def refuse(self, name: str, reason: str) -> None:
        self.rejected.append({'path': name, 'reason': reason})

    def wanted(self, name: str) -> bool:
        parts = [p for p in re.split(r'[\\/]+', name) if p not in ('', '.')]
        if re.match(r'^([\\/]|[A-Za-z]:)', name):
            self.refuse(name, UNSAFE + 'absolute path')
            return False
        if '..' in parts:
            self.refuse(name, UNSAFE + "'..' in its path")
            return False
        for i, part in enumerate(parts):
            reason = ignored_reason(part)
            if reason:
                shown = '/'.join(parts[:i + 1]) + '/' * (i + 1 < len(parts))
                if all(x['path'] != shown for x in self.ignored):
                    self.ignored.append({'path': shown, 'reason': reason})
                return False
        return bool(parts)


def _extract_tar(archive: Path, dest: Path, members: _Members, track):

    def data_filter(member: tarfile.TarInfo, path: str):
        if not members.wanted(member.name):
            return None
        try:
            return tarfile.data_filter(member, path)
        except (tarfile.AbsoluteLinkError,
                tarfile.LinkOutsideDestinationError):
            members.refuse(member.name, OUTSIDE.format(member.linkname))
        except tarfile.SpecialFileError:
            members.refuse(member.name, SPECIAL)
        except tarfile.FilterError as e:
            members.refuse(member.name, UNSAFE + str(e))

    with tarfile.open(archive) as tf:
        for member in track(tf, None):
            try:
                tf.extract(member, dest, filter=data_filter)
            except (OSError, KeyError) as e:  # e.g. a link to nothing
                members.refuse(member.name, f'not extracted: {e}')


def _extract_zip(archive: Path, dest: Path, members: _Members, track):
    with zipfile.ZipFile(archive) as zf:
        infos, names = zf.infolist(), set(zf.namelist())
        for info in track(infos, len(infos)):
            name, source = info.filename, info
            mode = info.external_attr >> 16
            if not members.wanted(name):
                continue
            if stat.S_ISLNK(mode):  # zipfile would write the link's text
                link = zf.read(info).decode('utf-8', 'replace')
                target = posixpath.normpath(
                    posixpath.join(posixpath.dirname(name), link))
                if link.startswith('/') or target.startswith('..'):
                    members.refuse(name, OUTSIDE.format(link))
                    continue
                source = zf.getinfo(target) if target in names else None
                if source is None or stat.S_ISLNK(source.external_attr >> 16):
                    members.refuse(name, 'link to a file not in the archive '
                                   f'(-> {target})')
                    continue
            elif stat.S_IFMT(mode) and not (stat.S_ISREG(mode)
                                            or stat.S_ISDIR(mode)):
                members.refuse(name, SPECIAL)
                continue
            try:  # an inner link becomes a copy of its target
                (dest / name).parent.mkdir(parents=True, exist_ok=True)
                if source is info:
                    zf.extract(info, dest)
                else:
                    with zf.open(source) as src, open(dest / name, 'wb') as f:
                        shutil.copyfileobj(src, f)
            except (OSError, zipfile.BadZipFile, RuntimeError,
                    NotImplementedError) as e:  # encrypted, bad CRC...
                members.refuse(name, f'not extracted: {e}')


def extract_archive(archive, dest, progress_bar: bool = True):
    """Extract a tar or zip archive into ``dest``, refusing unsafe members.

    Returns ``(rejected, ignored)``, lists of ``{'path', 'reason'}``.
    """
    archive, dest = Path(archive), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    if zipfile.is_zipfile(archive):
        extract, kind = _extract_zip, 'zip'
    elif _is_tar(archive):
        extract, kind = _extract_tar, 'tar'
    else:
        raise PreparationError(
            f'{archive} is neither a folder nor a tar/zip archive; pass a '
            'URL, a .tgz/.tar/.zip archive or a folder with one sub-folder '
            'per class')
    members = _Members()
    try:
        extract(archive, dest, members, lambda items, total: progress(
            items, progress_bar, f'Extracting {archive.name}', total))
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
                 progress_bar: bool, logger=None):
    """Extract into ``extracted/<stem>-<sha12>`` once; reuse it later.

    Returns ``(folder, rejected, ignored)``.
    """
    stem = re.sub(r'(\.tar)?\.[^.]*$', '', archive.name) or 'archive'
    dest = extracted_dir / f'{stem}-{sha[:12]}'
    marker = extracted_dir / f'{dest.name}.json'  # written once complete
    if marker.is_file():
        info = json.loads(marker.read_text(encoding='utf-8'))
        log(f'Using the extracted archive {dest}', logger)
        return dest, info['rejected'], info['ignored']
    extracted_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix='.tmp-', dir=extracted_dir))
    try:
        rejected, ignored = extract_archive(archive, tmp, progress_bar)
        shutil.rmtree(dest, ignore_errors=True)  # an unfinished earlier one
        os.replace(tmp, dest)
        atomic_write_bytes(
            json.dumps(dict(archive=str(archive), archive_sha256=sha,
                            rejected=rejected, ignored=ignored),
                       indent=2).encode(), marker)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest, rejected, ignored
