"""The image check before training: reasons, the cache, the manifest."""
import json
import os
import time
from pathlib import Path

import cv2
import pytest
from conftest import make_flower_dataset, make_flower_image
from numpy.random import default_rng

from flower_mm.datasets import (BrokenImagesError, FlowerDataset,
                                check_image_file, find_broken_images)
from flower_mm.datasets import broken_images
from flower_mm.datasets.broken_images import find_broken_images_on_rank0
from flower_mm.datasets.image_check import cache_file_for


def add_broken_files(split_dir):
    """The three broken files of issue 14, in three classes."""
    good = (split_dir / 'daisy' / 'daisy_000.jpg').read_bytes()
    (split_dir / 'rose' / 'cut.jpg').write_bytes(good[:len(good) // 3])
    (split_dir / 'tulip' / 'empty.jpg').write_bytes(b'')
    (split_dir / 'daisy' / 'notes.jpg').write_text('a text file, not a photo')
    return ['rose/cut.jpg', 'tulip/empty.jpg', 'daisy/notes.jpg']


@pytest.fixture
def data_root(tmp_path):
    return make_flower_dataset(tmp_path / 'flower_dataset', 2, 1)


def test_each_kind_of_broken_file_gets_its_reason(data_root, tmp_path):
    add_broken_files(data_root / 'train')
    train = data_root / 'train'
    assert check_image_file(str(train / 'daisy' / 'daisy_000.jpg')) is None
    png = tmp_path / 'ok.png'
    cv2.imwrite(str(png), make_flower_image(0, default_rng(0)))
    assert check_image_file(str(png)) is None
    assert check_image_file(str(train / 'rose' / 'cut.jpg')).startswith(
        'truncated')
    assert check_image_file(str(train / 'tulip' / 'empty.jpg')) == \
        'empty file (0 bytes)'
    assert check_image_file(str(train / 'daisy' / 'notes.jpg')).startswith(
        "not an image (24 bytes starting with b'a text f'")
    assert 'cannot be read' in check_image_file(str(tmp_path / 'gone.jpg'))


def images_of(split_dir):
    return sorted(str(p) for p in split_dir.rglob('*.jpg'))


def test_cache_skips_checked_files_and_rechecks_changed_ones(data_root):
    train = data_root / 'train'
    first = find_broken_images(images_of(train), str(train), workers=2)
    assert (first.num_files, first.num_decoded, first.num_cached) == (10, 10,
                                                                      0)
    assert first.broken == {}
    assert first.cache_file == cache_file_for(str(train))
    assert not list(train.glob('.*'))  # the data stays as it was

    again = find_broken_images(images_of(train), str(train))
    assert (again.num_decoded, again.num_cached) == (0, 10)

    # Replaced by a cut copy: same name, new size and time -> decoded again.
    victim = train / 'rose' / 'rose_001.jpg'
    data = victim.read_bytes()
    victim.write_bytes(data[:len(data) // 3])
    changed = find_broken_images(images_of(train), str(train))
    assert (changed.num_decoded, changed.num_cached) == (1, 9)
    assert list(changed.broken) == [str(victim)]
    assert changed.broken[str(victim)].startswith('truncated')

    # The broken verdict is cached too, until the file is fixed.
    assert find_broken_images(images_of(train),
                              str(train)).broken == changed.broken
    victim.write_bytes(data)
    fixed = find_broken_images(images_of(train), str(train))
    assert (fixed.num_decoded, fixed.broken) == (1, {})


def test_same_size_rewrite_is_caught_by_its_modification_time(data_root):
    train = data_root / 'train'
    find_broken_images(images_of(train), str(train))
    victim = train / 'tulip' / 'tulip_000.jpg'
    size = victim.stat().st_size
    victim.write_bytes(b'\0' * size)
    stat = victim.stat()
    os.utime(victim, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    result = find_broken_images(images_of(train), str(train))
    assert result.num_decoded == 1 and str(victim) in result.broken


def test_a_prepared_split_is_trusted_until_a_file_changes(data_root):
    """tools/prepare_flowers.py verified every image it lists before it
    wrote manifest.json; files not newer than the manifest are trusted."""
    train = data_root / 'train'
    names = sorted(p.relative_to(train).as_posix()
                   for p in train.rglob('*.jpg'))
    (data_root / 'train.txt').write_text(''.join(f'{n} 0\n' for n in names))
    (data_root / 'manifest.json').write_text('{}')
    later = time.time() + 5
    os.utime(data_root / 'manifest.json', (later, later))
    result = find_broken_images(images_of(train), str(train))
    assert (result.num_trusted, result.num_decoded) == (10, 0)
    assert result.cache_file is None  # the split stays as it was written

    victim = train / 'daisy' / 'daisy_001.jpg'
    victim.write_bytes(b'')
    os.utime(victim, (later + 5, later + 5))
    result = find_broken_images(images_of(train), str(train))
    assert (result.num_trusted, result.num_decoded) == (9, 1)
    assert result.broken == {str(victim): 'empty file (0 bytes)'}


def test_dataset_refuses_broken_files_with_one_message(data_root):
    names = add_broken_files(data_root / 'train')
    with pytest.raises(BrokenImagesError) as err:
        FlowerDataset(data_root=str(data_root), data_prefix='train')
    msg = str(err.value)
    assert '\n' not in msg
    assert msg.startswith('3 of 13 image files in ')
    for name in names:
        assert name in msg
    assert 'tools/prepare_flowers.py' in msg
    assert 'train_dataloader.dataset.on_broken=skip' in msg
    listed = (data_root / 'broken_images_train.txt').read_text()
    assert f'full list: {data_root / "broken_images_train.txt"}' in msg
    assert sorted(line.split('\t')[0]
                  for line in listed.splitlines()[1:]) == sorted(names)


def test_long_lists_are_cut_after_ten(data_root):
    for i in range(12):
        (data_root / 'val' / 'rose' / f'empty_{i:02d}.jpg').write_bytes(b'')
    with pytest.raises(BrokenImagesError, match='; and 2 more \\(full list'):
        FlowerDataset(data_root=str(data_root), data_prefix='val')


def test_skip_leaves_broken_files_out(data_root):
    names = add_broken_files(data_root / 'train')
    dataset = FlowerDataset(
        data_root=str(data_root), data_prefix='train', on_broken='skip')
    assert len(dataset) == 10
    assert sorted(os.path.relpath(p, data_root / 'train')
                  for p in dataset.skipped_broken) == sorted(names)
    paths = [dataset.get_data_info(i)['img_path'] for i in range(10)]
    assert not set(paths) & set(dataset.skipped_broken)


def as_rank1(monkeypatch, work, folder):
    """``work()`` on rank 1 of a simulated two-process run, rank 0's
    ``work()`` running while rank 1 waits at the barrier: (rank 0's and
    rank 1's outcome, value or exception), and per barrier the rank that
    reached it and whether the cache existed then."""
    rank, outcomes, barriers = [1], {}, []

    def run():
        try:
            outcomes[rank[0]] = work()
        except Exception as err:  # compared between the ranks
            outcomes[rank[0]] = err

    def barrier():
        barriers.append((rank[0], os.path.isfile(cache_file_for(folder))))
        if rank[0] == 1:
            rank[0] = 0
            run()
            rank[0] = 1

    monkeypatch.setattr(broken_images, 'is_distributed', lambda: True)
    monkeypatch.setattr(broken_images, 'get_rank', lambda: rank[0])
    monkeypatch.setattr(broken_images, 'barrier', barrier)
    run()
    return outcomes[0], outcomes[1], barriers


def test_distributed_ranks_decode_on_rank0_only(data_root, monkeypatch):
    """Rank 0 decodes and writes the cache while the other ranks wait at a
    barrier; they then read its verdicts and decode nothing."""
    train = data_root / 'train'
    names = add_broken_files(train)
    paths = images_of(train)
    rank0, rank1, barriers = as_rank1(
        monkeypatch, lambda: find_broken_images_on_rank0(paths, str(train)),
        str(train))
    # Rank 1 waited before any verdict existed, rank 0 after writing them.
    assert barriers == [(1, False), (0, True)]
    assert (rank0.num_decoded, rank0.num_cached) == (13, 0)
    assert (rank1.num_decoded, rank1.num_cached) == (0, 13)
    assert rank1.broken == rank0.broken
    assert sorted(os.path.relpath(p, train)
                  for p in rank1.broken) == sorted(names)


@pytest.mark.parametrize('on_broken', ['error', 'skip'])
def test_distributed_ranks_refuse_or_skip_alike(data_root, monkeypatch,
                                               on_broken):
    add_broken_files(data_root / 'train')
    rank0, rank1, _ = as_rank1(
        monkeypatch, lambda: FlowerDataset(
            data_root=str(data_root), data_prefix='train',
            on_broken=on_broken), str(data_root / 'train'))
    if on_broken == 'error':
        assert isinstance(rank1, BrokenImagesError)
        assert str(rank1) == str(rank0)
        assert str(rank1).startswith('3 of 13 image files')
    else:
        assert rank1.skipped_broken == rank0.skipped_broken
        assert len(rank1) == len(rank0) == 10


def test_rank0_failing_check_does_not_leave_the_others_waiting(
        data_root, monkeypatch):
    barriers = []

    def check_fails(paths, folder):
        raise MemoryError('out of memory')

    monkeypatch.setattr(broken_images, 'is_distributed', lambda: True)
    monkeypatch.setattr(broken_images, 'get_rank', lambda: 0)
    monkeypatch.setattr(broken_images, 'barrier',
                        lambda: barriers.append('rank 0'))
    monkeypatch.setattr(broken_images, 'find_broken_images', check_fails)
    with pytest.raises(MemoryError):
        find_broken_images_on_rank0(images_of(data_root / 'train'),
                                    str(data_root / 'train'))
    assert barriers == ['rank 0']


def test_unknown_on_broken_value_is_an_error(data_root):
    with pytest.raises(Exception, match='on_broken="ignore" is not one of'):
        FlowerDataset(
            data_root=str(data_root), data_prefix='train', on_broken='ignore')


def test_benchmark_measures_first_and_cached_checks(tmp_path):
    """benchmarks/check_images.py on a few photos (its figures are in
    docs/robustness.md)."""
    import check_images as bench  # benchmarks/ is on the tests' path
    bench.write_photos(str(tmp_path), 6, 0)
    result = bench.measure(str(tmp_path / 'train'), workers=2)
    assert result['photos'] == 6 and result['workers'] == 2
    assert result['first_check_ms_per_photo'] == pytest.approx(
        1000 * result['first_check_s'] / 6, abs=0.1)
    # The second check read every verdict from the cache (measure() itself
    # asserts that it decoded nothing): one per photo, all sound.
    with open(cache_file_for(str(tmp_path / 'train'))) as f:
        verdicts = json.load(f)['files']
    assert sorted(Path(p).name for p in verdicts) == sorted(
        p.name for p in (tmp_path / 'train').rglob('*.jpg'))
    assert [entry[-1] for entry in verdicts.values()] == [None] * 6


def test_system_files_in_class_folders_are_not_images(data_root):
    """.DS_Store and Thumbs.db are not checked, listed or reported."""
    (data_root / 'train' / 'rose' / '.DS_Store').write_bytes(b'\0\0\0\1Bud1')
    (data_root / 'train' / 'tulip' / 'Thumbs.db').write_bytes(b'\xd0\xcf')
    dataset = FlowerDataset(data_root=str(data_root), data_prefix='train')
    assert len(dataset) == 10 and dataset.skipped_broken == {}
