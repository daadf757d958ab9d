"""A failed preparation on first use is a user error: one `error:` line."""
import socket

from conftest import (REPO_ROOT, assert_user_error, config_path, run_tool,
                      tiny_cfg_options)


def test_train_prepare_offline_ends_in_one_error_line(tmp_path,
                                                      pretrained_ckpt):
    sock = socket.socket()
    sock.bind(('127.0.0.1', 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    url = f'http://127.0.0.1:{port}/flower_photos.tgz'
    data_root = tmp_path / 'data'
    opts = tiny_cfg_options(data_root, pretrained_ckpt) + [
        'train_dataloader.dataset.prepare=True',
        f'train_dataloader.dataset.prepare_source={url}',
    ]
    proc = run_tool([
        REPO_ROOT / 'tools' / 'train.py',
        config_path('resnet50_flowers.py'), '--work-dir', tmp_path / 'wd',
        '--cfg-options', *opts
    ],
                    cwd=tmp_path,
                    check=False)
    assert_user_error(proc, f'could not download {url}', 'by hand',
                      f'--out {data_root}')
    assert not (data_root / 'train').exists()
