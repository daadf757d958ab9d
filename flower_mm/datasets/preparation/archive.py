"""Tar and zip extraction on the standard library's own safety.

``tarfile``'s ``data_filter`` refuses links leaving the target and special
files; ``zipfile`` never writes outside it. Added: absolute and ``..`` names
are refused (not rewritten), zip symlinks are never extracted (those
leaving the archive are refused as unsafe, as tar's), hidden files and
``__MACOSX/`` are skipped, and every refusal is reported.
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


def _wanted(name: str, rejected: list, ignored: list) -> bool:
    """Whether to extract ``name``; refused and skipped names are listed."""
    parts = [p for p in re.split(r'[\\/]+', name) if p not in ('', '.')]
    unsafe = 'absolute path' if re.match(r'^([\\/]|[A-Za-z]:)', name) else \
        "'..' in its path" if '..' in parts else None
    if unsafe:
        rejected.append({'path': name, 'reason': UNSAFE + unsafe})
        return False
    for i, part in enumerate(parts):
        reason = ignored_reason(part)
        shown = '/'.join(parts[:i + 1]) + '/' * (i + 1 < len(parts))
        if reason and all(x['path'] != shown for x in ignored):
            ignored.append({'path': shown, 'reason': reason})
        if reason:
            return False
    return bool(parts)


def _extract_tar(archive: Path, dest: Path, refuse, track) -> None:

    def data_filter(member: tarfile.TarInfo, path: str):
        try:
            return tarfile.data_filter(member, path)
        except (tarfile.AbsoluteLinkError,
                tarfile.LinkOutsideDestinationError):
            refuse(member.name, OUTSIDE.format(member.linkname))
        except tarfile.SpecialFileError:
            refuse(member.name, UNSAFE + 'special file (device, FIFO)')
        except tarfile.FilterError as e:
            refuse(member.name, UNSAFE + str(e))

    with tarfile.open(archive) as tf:
        for member in track(tf, None):
            try:
                tf.extract(member, dest, filter=data_filter)
            except (OSError, KeyError) as e:  # e.g. a link to nothing
                refuse(member.name, f'not extracted: {e}')


def _extract_zip(archive: Path, dest: Path, refuse, track) -> None:
    with zipfile.ZipFile(archive) as zf:
        for info in track(zf.infolist(), len(zf.infolist())):
            name, mode = info.filename, info.external_attr >> 16
            if stat.S_ISLNK(mode):  # zipfile would write the link's text
                link = zf.read(info).decode('utf-8', 'replace')
                target = posixpath.normpath(
                    posixpath.join(posixpath.dirname(name), link))
                outside = link.startswith('/') or target.startswith('..')
                refuse(name, OUTSIDE.format(link) if outside else
                       f'not extracted: a link to another member (-> {link})')
            elif stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
                refuse(name, UNSAFE + 'special file (device, FIFO)')
            else:
                try:
                    zf.extract(info, dest)
                except (OSError, zipfile.BadZipFile, RuntimeError,
                        NotImplementedError) as e:  # encrypted, bad CRC...
                    refuse(name, f'not extracted: {e}')


def extract_archive(archive, dest, progress_bar: bool = True):
    """Extract a tar or zip archive into ``dest``, refusing unsafe members.

    Returns ``(rejected, ignored)``, lists of ``{'path', 'reason'}``.
    """
    archive, dest, rejected, ignored = Path(archive), Path(dest), [], []
    try:
        kind = 'zip' if zipfile.is_zipfile(archive) else \
            'tar' if tarfile.is_tarfile(archive) else None
    except (OSError, EOFError):
        kind = None
    if kind is None:
        raise PreparationError(
            f'{archive} is neither a folder nor a tar/zip archive; pass a '
            'URL, a .tgz/.tar/.zip archive or a folder with one sub-folder '
            'per class')

    def track(members, total):
        for member in progress(members, progress_bar,
                               f'Extracting {archive.name}', total):
            name = getattr(member, 'filename', getattr(member, 'name', ''))
            if _wanted(name, rejected, ignored):
                yield member

    dest.mkdir(parents=True, exist_ok=True)
    try:
        extract = _extract_zip if kind == 'zip' else _extract_tar
        extract(archive, dest, lambda name, reason: rejected.append(
            {'path': name, 'reason': reason}), track)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError,
            zlib.error) as e:
        raise PreparationError(
            f'{archive} is not a readable {kind} archive or is truncated '
            f'({e}); if it is a download, delete it and download it again'
        ) from e
    return rejected, ignored


def extract_once(archive: Path, sha: str, extracted_dir: Path,
                 progress_bar: bool, logger=None):
    """``(folder, rejected, ignored)`` of ``archive`` extracted into
    ``extracted/<stem>-<sha12>``, once: a later call reuses it."""
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
        atomic_write_bytes(json.dumps(dict(
            archive=str(archive), archive_sha256=sha, rejected=rejected,
            ignored=ignored), indent=2).encode(), marker)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest, rejected, ignored
