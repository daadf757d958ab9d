"""The unsafe sources docs/data_preparation.md promises to handle: Windows
names and absolute paths inside a zip, symbolic links to folders in a folder
source. Through the public `prepare_flowers(...)` only."""
import os
import zipfile
from pathlib import Path

from conftest import PREPARE_QUIET as QUIET
from conftest import random_jpeg

from flower_mm.datasets.preparation import CLASSES, prepare_flowers


def jpeg(seed: int) -> bytes:
    return random_jpeg(seed, size=24)


def class_members():
    return {
        f'{cls}/img{i}.jpg': jpeg(10 * k + i)
        for k, cls in enumerate(CLASSES) for i in range(3)
    }


UNSAFE_ZIP_MEMBERS = {  # member name -> what the docs say about it
    '..\\..\\evil_windows_dotdot.jpg': "'..' in its path",
    'daisy\\..\\..\\..\\evil_nested_dotdot.jpg': "'..' in its path",
    'C:\\evil_drive.jpg': 'absolute path',
    'C:/evil_drive_slash.jpg': 'absolute path',
    '\\evil_backslash_root.jpg': 'absolute path',
    '/tmp/flower_mm_zip_absolute_evil.jpg': 'absolute path',
}


def files_named_evil(root):
    return list(Path(root).rglob('*evil*'))


def test_windows_and_absolute_names_in_a_zip_are_refused(tmp_path):
    archive = tmp_path / 'flowers.zip'
    with zipfile.ZipFile(archive, 'w') as zf:
        for name, data in class_members().items():
            zf.writestr(name, data)
        for k, name in enumerate(UNSAFE_ZIP_MEMBERS):
            zf.writestr(name, jpeg(900 + k))
    out = tmp_path / 'work' / 'out'
    result = prepare_flowers(archive, out, **QUIET)

    reasons = {r['path']: r['reason'] for r in result.rejected}
    for name, promised in UNSAFE_ZIP_MEMBERS.items():
        assert name in reasons, (name, reasons)
        assert reasons[name].startswith('unsafe archive member'), reasons
        assert promised in reasons[name], (name, reasons[name])
    # nothing written for them, anywhere
    assert files_named_evil(tmp_path) == []
    assert not Path('/tmp/flower_mm_zip_absolute_evil.jpg').exists()
    assert not Path('/evil_backslash_root.jpg').exists()
    # the rest of the archive is prepared: 3 images per class
    assert {cls: result.counts['train'][cls] + result.counts['val'][cls]
            for cls in CLASSES} == dict.fromkeys(CLASSES, 3)
    listed = (out / 'rejected.txt').read_text()
    for name in UNSAFE_ZIP_MEMBERS:
        assert name in listed


def test_symlinked_folder_in_a_folder_source_is_not_followed(tmp_path):
    src = tmp_path / 'photos'
    for name, data in class_members().items():
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_bytes(data)
    elsewhere = tmp_path / 'elsewhere'
    elsewhere.mkdir()
    (elsewhere / 'outside.jpg').write_bytes(jpeg(999))
    os.symlink(elsewhere, src / 'daisy' / 'linked', target_is_directory=True)

    out = tmp_path / 'out'
    result = prepare_flowers(src, out, **QUIET)
    ignored = {i['path']: i['reason'] for i in result.ignored}
    assert 'link' in ignored['daisy/linked/'], ignored
    assert result.counts['train']['daisy'] + result.counts['val'][
        'daisy'] == 3
    assert list(out.rglob('outside.jpg')) == []
    assert (elsewhere / 'outside.jpg').is_file()  # left alone


def test_a_link_inside_a_zip_is_not_extracted(tmp_path):
    archive = tmp_path / 'flowers.zip'
    with zipfile.ZipFile(archive, 'w') as zf:
        for name, data in class_members().items():
            zf.writestr(name, data)
        link = zipfile.ZipInfo('daisy/link.jpg')
        link.external_attr = 0o120777 << 16
        zf.writestr(link, 'img0.jpg')
    result = prepare_flowers(archive, tmp_path / 'out', **QUIET)
    assert {r['path']: r['reason'] for r in result.rejected} == {
        'daisy/link.jpg': 'not extracted: a link to another member '
        '(-> img0.jpg)'}
    assert not (result.source_root / 'daisy' / 'link.jpg').exists()
