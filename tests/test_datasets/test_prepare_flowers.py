"""Tests of tools/prepare_flowers.py and flower_mm.datasets.preparation.

Everything runs offline on small generated archives; the download path is
served by a local HTTP server on 127.0.0.1.
"""
import hashlib
import io
import json
import os
import socket
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import PREPARE_QUIET as QUIET
from conftest import REPO_ROOT as REPO
from conftest import HTTPFiles, random_jpeg, run_at_once
from PIL import Image

from flower_mm.datasets.preparation import (
    CLASSES, PreparationError, is_prepared, normalise_class_name,
    prepare_flowers, val_count)

TF_NAMES = ('daisy', 'dandelion', 'roses', 'sunflowers', 'tulips')
REPORT_NAMES = CLASSES
# Good images per class (daisy gets two more, which are duplicates).
N_GOOD = dict(zip(CLASSES, (6, 5, 7, 9, 4)))


# --------------------------------------------------------------------------
# Archive builders
# --------------------------------------------------------------------------
def jpeg(seed: int) -> bytes:
    return random_jpeg(seed)


def as_png(data: bytes) -> bytes:
    """The same pixels as ``data``, encoded as PNG (other bytes)."""
    buf = io.BytesIO()
    Image.open(io.BytesIO(data)).convert('RGB').save(buf, 'PNG')
    return buf.getvalue()


def corrupt_jpeg(seed: int) -> bytes:
    """A JPEG whose headers are fine but whose scan data is garbage."""
    data = bytearray(jpeg(seed))
    sos = data.index(b'\xff\xda')
    rng = np.random.RandomState(seed)
    data[sos + 20:-2] = rng.randint(0, 256,
                                    len(data) - sos -
                                    22).astype('uint8').tobytes()
    return bytes(data)


def good_members(class_names):
    """{relative path: bytes}: the same images whatever the folder names."""
    members = {}
    for k, (cls, folder) in enumerate(zip(CLASSES, class_names)):
        for i in range(N_GOOD[cls]):
            members[f'{folder}/img{i}.jpg'] = jpeg(100 * k + i)
    return members


BAD = {  # file name in the daisy folder -> expected start of the reason
    'corrupt.jpg': 'corrupt image data',
    'truncated.jpg': 'truncated image',
    'zero.jpg': 'empty file (0 bytes)',
    'text.jpg': "not an image (21 bytes starting with b'this is ')",
    'notes.txt': 'not an image file',
    'img0_copy.jpg': 'duplicate of {daisy}/img0.jpg (identical bytes)',
    'img1_again.png': 'duplicate of {daisy}/img1.jpg (identical pixels)',
}


def bad_members(daisy: str):
    return {
        f'{daisy}/corrupt.jpg': corrupt_jpeg(7),
        f'{daisy}/truncated.jpg': jpeg(8)[:700],
        f'{daisy}/zero.jpg': b'',
        f'{daisy}/text.jpg': b'this is not an image\n',
        f'{daisy}/notes.txt': b'a note\n',
        f'{daisy}/img0_copy.jpg': jpeg(0),
        f'{daisy}/img1_again.png': as_png(jpeg(1)),
    }


def add_tar_file(tf, name, data, **attrs):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    for key, value in attrs.items():
        setattr(info, key, value)
    tf.addfile(info, io.BytesIO(data) if data else None)


def add_tar_special(tf, name, type_, linkname=''):
    info = tarfile.TarInfo(name)
    info.type = type_
    info.linkname = linkname
    tf.addfile(info)


def make_tgz(path: Path, top='flower_photos', extra=True) -> Path:
    """TensorFlow naming (roses...), under one top folder, with bad members."""
    members = good_members(TF_NAMES)
    if extra:
        members.update(bad_members('daisy'))
    with tarfile.open(path, 'w:gz') as tf:
        add_tar_special(tf, top, tarfile.DIRTYPE)
        for name, data in members.items():
            add_tar_file(tf, f'{top}/{name}', data)
        add_tar_file(tf, f'{top}/LICENSE.txt', b'CC-BY\n')
        if extra:
            add_tar_file(tf, f'{top}/.DS_Store', b'\0\0')
            add_tar_file(tf, f'__MACOSX/{top}/daisy/._img0.jpg', b'\0' * 10)
            add_tar_file(tf, '../../../../evil.jpg', jpeg(900))
            add_tar_file(tf, '/tmp/flower_mm_absolute_evil.jpg', jpeg(901))
            add_tar_special(tf, f'{top}/daisy/link.jpg', tarfile.SYMTYPE,
                            '../../../../../etc/passwd')
            add_tar_special(tf, f'{top}/daisy/hard.jpg', tarfile.LNKTYPE,
                            '../outside.jpg')
            add_tar_special(tf, f'{top}/daisy/fifo.jpg', tarfile.FIFOTYPE)
            # A link that stays inside: extracted as a copy, then rejected
            # as a duplicate of its target.
            add_tar_special(tf, f'{top}/tulips/inside.jpg', tarfile.SYMTYPE,
                            'img0.jpg')
    return path


def make_zip(path: Path, members=None, extra=True) -> Path:
    """Report naming (rose...), class folders at the archive root."""
    if members is None:
        members = good_members(REPORT_NAMES)
        if extra:
            members.update(bad_members('daisy'))
    with zipfile.ZipFile(path, 'w') as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        if extra:
            zf.writestr('__MACOSX/daisy/._img0.jpg', b'\0' * 10)
            zf.writestr('../../../../evil.jpg', jpeg(900))
            link = zipfile.ZipInfo('daisy/link.jpg')
            link.external_attr = (0o120777 << 16)
            zf.writestr(link, '../../../../etc/passwd')
    return path


@pytest.fixture(scope='module')
def archives(tmp_path_factory):
    folder = tmp_path_factory.mktemp('archives')
    return {
        'tgz': make_tgz(folder / 'flower_photos.tgz'),
        'zip': make_zip(folder / 'flower_dataset.zip'),
        'clean_tgz': make_tgz(folder / 'clean.tgz', extra=False),
    }


def tree(root: Path):
    """{relative path: (size, mtime_ns)} of everything under root."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = path.lstat()
            out[path.relative_to(root).as_posix()] = (st.st_size if
                                                      not path.is_dir() else 0,
                                                      st.st_mtime_ns)
    return out


def reasons(result):
    return {r['path']: r['reason'] for r in result.rejected}


# --------------------------------------------------------------------------
# Splitting
# --------------------------------------------------------------------------
@pytest.mark.parametrize('kind', ['tgz', 'zip'])
def test_split_counts_per_class(archives, tmp_path, kind):
    out = tmp_path / 'out'
    result = prepare_flowers(archives[kind], out, **QUIET)
    assert result.classes == CLASSES
    assert not result.already_prepared
    assert (out / 'classes.txt').read_text() == '\n'.join(CLASSES) + '\n'
    for cls in CLASSES:
        n = N_GOOD[cls]
        assert result.counts['val'][cls] == val_count(n, 0.2)
        assert result.counts['train'][cls] == n - val_count(n, 0.2)
        for split in ('train', 'val'):
            files = sorted(p.name for p in (out / split / cls).iterdir())
            assert len(files) == result.counts[split][cls]
    # The annotation lists match the folders, label = class index.
    for split in ('train', 'val'):
        lines = (out / f'{split}.txt').read_text().splitlines()
        assert len(lines) == sum(result.counts[split].values())
        for line in lines:
            rel, label = line.rsplit(' ', 1)
            assert (out / split / rel).is_file()
            assert CLASSES[int(label)] == rel.split('/')[0]
    # No image is in both splits.
    train = {
        hashlib.sha256(p.read_bytes()).hexdigest()
        for p in (out / 'train').rglob('*.*')
    }
    val = {
        hashlib.sha256(p.read_bytes()).hexdigest()
        for p in (out / 'val').rglob('*.*')
    }
    assert train and val and not train & val
    manifest = json.loads((out / 'manifest.json').read_text())
    assert manifest['counts'] == result.counts
    assert manifest['seed'] == 0 and manifest['val_ratio'] == 0.2
    assert manifest['classes'] == list(CLASSES)
    assert manifest['source_sha256'] == hashlib.sha256(
        archives[kind].read_bytes()).hexdigest()


def test_both_namings_give_the_same_split(archives, tmp_path):
    a = prepare_flowers(archives['tgz'], tmp_path / 'a', **QUIET)
    b = prepare_flowers(archives['zip'], tmp_path / 'b', **QUIET)
    assert a.counts == b.counts
    for name in ('classes.txt', 'train.txt', 'val.txt'):
        assert (tmp_path / 'a' / name).read_bytes() == (tmp_path / 'b' /
                                                        name).read_bytes()


def test_split_is_deterministic_and_depends_on_seed(archives, tmp_path):
    prepare_flowers(archives['clean_tgz'], tmp_path / 'a', **QUIET)
    prepare_flowers(
        archives['clean_tgz'],
        tmp_path / 'b',
        workers=1,
        progress=False,
        logger='silent')
    for name in ('train.txt', 'val.txt'):
        assert (tmp_path / 'a' / name).read_bytes() == (tmp_path / 'b' /
                                                        name).read_bytes()
    assert tree(tmp_path / 'a' / 'val').keys() == tree(tmp_path / 'b' /
                                                       'val').keys()
    prepare_flowers(archives['clean_tgz'], tmp_path / 'c', seed=1, **QUIET)
    assert (tmp_path / 'a' /
            'val.txt').read_bytes() != (tmp_path / 'c' /
                                        'val.txt').read_bytes()


def test_val_count_rule():
    assert [val_count(n, 0.2) for n in (0, 1, 2, 4, 5, 7, 8, 9)] == \
        [0, 0, 1, 1, 1, 1, 2, 2]
    assert val_count(10, 0.99) == 9  # at least one image stays in train
    assert normalise_class_name(' Roses ') == 'rose'
    assert normalise_class_name('TULIPS') == 'tulip'
    assert normalise_class_name('orchid') is None


# --------------------------------------------------------------------------
# Re-runs
# --------------------------------------------------------------------------
def test_rerun_is_a_noop(archives, tmp_path):
    out = tmp_path / 'out'
    prepare_flowers(archives['tgz'], out, **QUIET)
    before = tree(tmp_path)
    again = prepare_flowers(archives['tgz'], out, **QUIET)
    assert again.already_prepared
    assert tree(tmp_path) == before  # nothing written, mtimes unchanged
    assert is_prepared(out) and not is_prepared(out, seed=5)
    # Without a source, any existing split with these settings is kept.
    assert prepare_flowers(None, out, **QUIET).already_prepared
    assert tree(tmp_path) == before


def test_other_ratio_or_seed_needs_force(archives, tmp_path):
    out = tmp_path / 'out'
    prepare_flowers(archives['tgz'], out, **QUIET)
    before = tree(out)
    with pytest.raises(PreparationError, match='--force') as e:
        prepare_flowers(archives['tgz'], out, val_ratio=0.5, **QUIET)
    assert 'val_ratio=0.2' in str(e.value) and 'val_ratio=0.5' in str(e.value)
    with pytest.raises(PreparationError, match='seed=3'):
        prepare_flowers(archives['tgz'], out, seed=3, **QUIET)
    assert tree(out) == before
    result = prepare_flowers(
        archives['tgz'], out, val_ratio=0.5, force=True, **QUIET)
    assert result.counts['val'] == {
        c: val_count(N_GOOD[c], 0.5)
        for c in CLASSES
    }
    assert json.loads((out / 'manifest.json').read_text())['val_ratio'] == 0.5
    assert sum(1 for _ in (out / 'val').rglob('*.*')) == sum(
        result.counts['val'].values())
    assert not list(out.glob('.staging-*')) and not list(out.glob('.old-*'))


def test_other_source_needs_force(archives, tmp_path):
    out = tmp_path / 'out'
    prepare_flowers(archives['tgz'], out, **QUIET)
    with pytest.raises(PreparationError, match='already holds a split made'):
        prepare_flowers(archives['zip'], out, **QUIET)
    assert prepare_flowers(
        archives['zip'], out, force=True,
        **QUIET).source == str(archives['zip'])


def test_foreign_split_without_manifest_is_refused(archives, tmp_path):
    out = tmp_path / 'out'
    (out / 'train' / 'daisy').mkdir(parents=True)
    with pytest.raises(PreparationError, match='no manifest.json'):
        prepare_flowers(archives['tgz'], out, **QUIET)
    prepare_flowers(archives['tgz'], out, force=True, **QUIET)
    assert is_prepared(out)


def test_incomplete_split_is_detected(archives, tmp_path):
    out = tmp_path / 'out'
    prepare_flowers(archives['clean_tgz'], out, **QUIET)
    victim = next((out / 'val' / 'tulip').iterdir())
    victim.unlink()
    with pytest.raises(PreparationError, match='incomplete') as e:
        prepare_flowers(archives['clean_tgz'], out, **QUIET)
    assert f'val/tulip/{victim.name}' in str(e.value)
    assert not is_prepared(out)
    prepare_flowers(archives['clean_tgz'], out, force=True, **QUIET)
    assert victim.is_file()


def test_concurrent_runs_prepare_once(archives, tmp_path):
    """Training ranks that all call prepare_flowers get one split."""
    out = tmp_path / 'out'
    results, errors = run_at_once(
        lambda: prepare_flowers(archives['tgz'], out, **QUIET))
    assert not errors
    assert sorted(r.already_prepared for r in results) == [False, True, True]
    assert len(os.listdir(out / 'extracted')) == 2  # one folder, one .json


# --------------------------------------------------------------------------
# Rejections, unsafe members, nothing written outside
# --------------------------------------------------------------------------
@pytest.mark.parametrize('kind,daisy', [('tgz', 'flower_photos/daisy'),
                                        ('zip', 'daisy')])
def test_rejection_report(archives, tmp_path, monkeypatch, kind, daisy):
    work = tmp_path / 'cwd'
    work.mkdir()
    monkeypatch.chdir(work)
    out = tmp_path / 'deep' / 'er' / 'out'
    before = tree(tmp_path)
    result = prepare_flowers(archives[kind], out, **QUIET)

    # Only the output folder changed; the traversal members went nowhere.
    after = tree(tmp_path)
    outside = {
        p
        for p in set(after) - set(before)
        if not p.startswith('deep/er/out/') and p not in ('deep', 'deep/er',
                                                          'deep/er/out')
    }
    assert outside == set()
    assert not any('evil' in p for p in after)
    assert not Path('/tmp/flower_mm_absolute_evil.jpg').exists()

    got = reasons(result)
    for name, expected in BAD.items():
        path = f'{daisy}/{name}'
        assert got[path].startswith(expected.format(daisy=daisy)), (path,
                                                                    got[path])
        # Rejected files are left where they were, untouched.
        assert (result.source_root / path).is_file()
    assert got['../../../../evil.jpg'].startswith('unsafe archive member')
    assert 'outside the archive' in got[f'{daisy}/link.jpg']
    if kind == 'tgz':
        assert got['/tmp/flower_mm_absolute_evil.jpg'] == (
            'unsafe archive member: absolute path')
        assert 'outside the archive' in got[f'{daisy}/hard.jpg']
        assert 'special file' in got[f'{daisy}/fifo.jpg']
        assert got['flower_photos/tulips/inside.jpg'].startswith(
            'duplicate of flower_photos/tulips/img0.jpg')
    assert len(result.rejected) == len(got)  # each file listed once

    ignored = {i['path']: i['reason'] for i in result.ignored}
    assert ignored['__MACOSX/'] == 'macOS metadata folder'
    assert not (result.source_root / '__MACOSX').exists()
    if kind == 'tgz':
        assert ignored['flower_photos/.DS_Store'] == 'hidden file or folder'
        assert ignored['flower_photos/LICENSE.txt'] == (
            'not inside a class folder')

    # The readable report and the manifest list the same.
    report = (out / 'rejected.txt').read_text()
    for path, reason in got.items():
        assert f'{path}\t{reason}' in report
    manifest = json.loads((out / 'manifest.json').read_text())
    assert {r['path']: r['reason'] for r in manifest['rejected']} == got
    # None of them made it into the split.
    listed = (out / 'train.txt').read_text() + (out / 'val.txt').read_text()
    for name in BAD:
        assert name not in listed


def test_folder_source_is_read_only(archives, tmp_path):
    src = tmp_path / 'photos'
    with tarfile.open(archives['clean_tgz']) as tf:
        tf.extractall(src, filter='data')
    before = tree(src)
    result = prepare_flowers(src, tmp_path / 'out', **QUIET)
    assert tree(src) == before
    assert result.source_root == src  # report paths are relative to it
    assert set(os.listdir(tmp_path)) == {'photos', 'out'}
    assert not (tmp_path / 'out' / 'extracted').exists()
    assert prepare_flowers(src, tmp_path / 'out', **QUIET).already_prepared
    with pytest.raises(PreparationError, match='inside the source folder'):
        prepare_flowers(src, src / 'out', **QUIET)


# --------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------
def class_zip(tmp_path, folders, extra=None):
    members = {}
    for k, folder in enumerate(folders):
        for i in range(3):
            members[f'{folder}/img{i}.jpg'] = jpeg(500 + 10 * k + i)
    members.update(extra or {})
    return make_zip(tmp_path / 'classes.zip', members, extra=False)


def test_empty_class_is_an_error(tmp_path):
    src = class_zip(tmp_path, ['daisy', 'dandelion', 'rose', 'sunflower'],
                    {'tulip/': b''})
    with pytest.raises(
            PreparationError, match='class "tulip" has no usable image') as e:
        prepare_flowers(src, tmp_path / 'out', **QUIET)
    assert 'holds no files' in str(e.value)
    # Only rejected files: the message says what they were.
    src = class_zip(tmp_path, ['daisy', 'dandelion', 'rose', 'sunflower'], {
        'tulips/a.jpg': b'',
        'tulips/b.jpg': b'text'
    })
    with pytest.raises(PreparationError, match='class "tulip"') as e:
        prepare_flowers(src, tmp_path / 'out2', **QUIET)
    assert 'tulips/a.jpg: empty file' in str(e.value)
    assert "tulips/b.jpg: not an image (4 bytes starting with b'text')" in \
        str(e.value)
    assert not (tmp_path / 'out2' / 'train').exists()


def test_unknown_and_missing_classes_are_errors(tmp_path):
    src = class_zip(tmp_path, list(CLASSES) + ['orchids'])
    with pytest.raises(PreparationError, match='unknown class folder') as e:
        prepare_flowers(src, tmp_path / 'out', **QUIET)
    assert '"orchids"' in str(e.value)
    src = class_zip(tmp_path, ['daisy', 'dandelions', 'roses', 'sunflower'])
    with pytest.raises(PreparationError, match='missing class folder') as e:
        prepare_flowers(src, tmp_path / 'out', **QUIET)
    assert '"tulip"' in str(e.value) and 'dandelions' in str(e.value)
    src = class_zip(tmp_path, list(CLASSES) + ['roses'])
    with pytest.raises(PreparationError, match='both class "rose"'):
        prepare_flowers(src, tmp_path / 'out', **QUIET)


def test_bad_sources_and_arguments(tmp_path):
    with pytest.raises(PreparationError, match='source not found: .*nowhere'):
        prepare_flowers(tmp_path / 'nowhere.tgz', tmp_path / 'out', **QUIET)
    not_archive = tmp_path / 'photos.tgz'
    not_archive.write_bytes(b'not an archive at all')
    with pytest.raises(PreparationError, match='neither a folder nor'):
        prepare_flowers(not_archive, tmp_path / 'out', **QUIET)
    for ratio in (0, 1, 1.5, -0.1):
        with pytest.raises(PreparationError, match='val_ratio'):
            prepare_flowers(
                not_archive, tmp_path / 'out', val_ratio=ratio, **QUIET)
    assert not (tmp_path / 'out' / 'train').exists()


# --------------------------------------------------------------------------
# Download
# --------------------------------------------------------------------------
@pytest.mark.parametrize('mode', ['503', 'short'])
def test_download_retries_once(archives, tmp_path, http_server, mode):
    _, base = http_server
    data = archives['tgz'].read_bytes()
    HTTPFiles.payloads['/flower_photos.tgz'] = data
    HTTPFiles.failures['/flower_photos.tgz'] = (mode, 1)
    url = f'{base}/flower_photos.tgz'
    out = tmp_path / 'out'
    result = prepare_flowers(url, out, backoff=0.01, **QUIET)
    assert HTTPFiles.hits['/flower_photos.tgz'] == 2
    assert result.source == url
    assert result.source_sha256 == hashlib.sha256(data).hexdigest()
    assert (out / 'downloads' / 'flower_photos.tgz').read_bytes() == data
    assert not list((out / 'downloads').glob('*.part'))
    manifest = json.loads((out / 'manifest.json').read_text())
    assert manifest['source'] == url and manifest['source_type'] == 'url'
    assert manifest['source_file'] == 'downloads/flower_photos.tgz'
    assert set(os.listdir(tmp_path)) == {'out'}
    # Re-running with the same URL is a no-op: no request at all.
    assert prepare_flowers(url, out, **QUIET).already_prepared
    assert HTTPFiles.hits['/flower_photos.tgz'] == 2


def test_download_keeps_failing(tmp_path, http_server):
    _, base = http_server
    HTTPFiles.payloads['/flower_photos.tgz'] = b'x' * 100
    HTTPFiles.failures['/flower_photos.tgz'] = ('503', 99)
    url = f'{base}/flower_photos.tgz'
    with pytest.raises(PreparationError) as e:
        prepare_flowers(
            url, tmp_path / 'out', retries=2, backoff=0.01, **QUIET)
    msg = str(e.value)
    assert msg.startswith(f'could not download {url}: HTTP 503')
    assert 'by hand' in msg and 'tools/prepare_flowers.py' in msg
    assert 'flower_photos.tgz' in msg.split('by hand')[1]
    assert HTTPFiles.hits['/flower_photos.tgz'] == 3
    assert not list((tmp_path / 'out').rglob('*.part'))
    assert not (tmp_path / 'out' / 'train').exists()


def test_download_not_found_is_not_retried(tmp_path, http_server):
    _, base = http_server
    with pytest.raises(PreparationError, match='HTTP 404'):
        prepare_flowers(
            f'{base}/missing.tgz', tmp_path / 'out', backoff=0.01, **QUIET)
    assert HTTPFiles.hits['/missing.tgz'] == 1


def test_download_offline(tmp_path):
    sock = socket.socket()
    sock.bind(('127.0.0.1', 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    url = f'http://127.0.0.1:{port}/flower_photos.tgz'
    with pytest.raises(PreparationError) as e:
        prepare_flowers(
            url, tmp_path / 'out', retries=1, backoff=0.01, **QUIET)
    assert f'could not download {url}' in str(e.value)
    assert 'by hand' in str(e.value)


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------
def test_cli(archives, tmp_path):
    out = tmp_path / 'out'
    cmd = [sys.executable, 'tools/prepare_flowers.py']
    run = dict(cwd=REPO, capture_output=True, text=True, timeout=120)
    proc = subprocess.run(cmd + [str(archives['tgz']), '--out',
                                 str(out)], **run)
    assert proc.returncode == 0, proc.stderr
    assert 'Split written' in proc.stdout
    assert 'rejected.txt' in proc.stdout
    for cls in CLASSES:
        assert cls in proc.stdout
    assert 'Verifying images' in proc.stderr  # progress bars go to stderr
    total = sum(N_GOOD.values())
    assert f'total  ' in proc.stdout and str(total - sum(
        val_count(n, 0.2) for n in N_GOOD.values())) in proc.stdout

    proc = subprocess.run(
        cmd + [
            str(archives['tgz']), '--out',
            str(out), '--seed', '1', '--no-progress'
        ], **run)
    assert proc.returncode == 1
    assert proc.stderr.startswith('error: ') and '--force' in proc.stderr

    proc = subprocess.run(
        cmd + [str(tmp_path / 'nope.zip'), '--out',
               str(out)], **run)
    assert proc.returncode == 1
    assert proc.stderr.startswith('error: source not found')
