"""The local_atomic file backend: a full disk leaves the old file intact."""
import errno

import pytest

from flower_mm.fileio import atomic_write_bytes


def test_atomic_write_keeps_old_file_when_the_disk_fills(
        tmp_path, disk_full_on):
    target = tmp_path / 'data.bin'
    atomic_write_bytes(b'old contents', target)
    disk_full_on('data.bin')
    with pytest.raises(OSError) as err:
        atomic_write_bytes(b'new contents' * 1000, target)
    assert err.value.errno == errno.ENOSPC
    assert target.read_bytes() == b'old contents'
    assert [p.name for p in tmp_path.iterdir()] == ['data.bin']
