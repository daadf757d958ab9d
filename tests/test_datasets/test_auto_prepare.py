import socket

from conftest import HTTPFiles

from flower_mm.datasets.auto_prepare import holds_split, remote_size


def test_remote_size_is_the_content_length_or_none(http_server):
    _, base = http_server
    HTTPFiles.payloads['/a.tgz'] = b'x' * 3000
    assert remote_size(f'{base}/a.tgz') == 3000
    assert remote_size(f'{base}/missing.tgz') is None
    assert HTTPFiles.requests == [('HEAD', '/a.tgz'),
                                  ('HEAD', '/missing.tgz')]
    sock = socket.socket()
    sock.bind(('127.0.0.1', 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there: offline
    assert remote_size(f'http://127.0.0.1:{port}/a.tgz') is None


def test_a_root_holds_a_split_once_any_part_of_one_is_there(tmp_path):
    assert not holds_split(str(tmp_path / 'missing'))
    # What an interrupted preparation leaves is not a split.
    for leftover in ('downloads', 'extracted', '.prepare.lock'):
        (tmp_path / leftover).mkdir()
    assert not holds_split(str(tmp_path))
    (tmp_path / 'val').mkdir()
    assert holds_split(str(tmp_path))
