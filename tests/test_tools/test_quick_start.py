"""The README's quick start, run as written: from no data to a trained model.

The train line is taken from the README itself, so the two cannot drift;
the flower archive comes from a local HTTP server instead of the internet.
"""
import io
import re
import shlex
import tarfile

import cv2
import numpy as np
import pytest
from conftest import (REPO_ROOT, TINY_IMG, HTTPFiles, make_flower_image,
                      run_tool, tiny_cfg_options)
from mmengine.config import Config
from mmpretrain.registry import DATASETS

from flower_mm.datasets import FlowerDataset
from flower_mm.utils import exit_on_user_error

# TensorFlow's flower_photos.tgz folder names, in label order.
TF_FOLDERS = ('daisy', 'dandelion', 'roses', 'sunflowers', 'tulips')


def readme_quick_start() -> list:
    """The commands of the README's first shell block, comments removed."""
    text = (REPO_ROOT / 'README.md').read_text(encoding='utf-8')
    block = re.search(r'```shell\n(.*?)```', text, re.S).group(1)
    lines = [line.split('  #')[0].strip() for line in block.splitlines()]
    return [line for line in lines if line and not line.startswith('#')]


def ci_commands() -> list:
    lines = (REPO_ROOT / '.ci' / 'run').read_text().splitlines()
    return [line for line in lines if line and not line.startswith('#')]


def test_readme_quick_start_is_setup_train_and_the_ci_test_line():
    setup, train, test = readme_quick_start()
    # The set-up and test lines are what CI runs, in that order.
    ci = ci_commands()
    steps = setup.split(' && ') + [test]
    assert [ci.index(step) for step in steps] == sorted(
        ci.index(step) for step in steps)
    assert train == 'python tools/train.py configs/resnet50_flowers.py'


def flower_photos_tgz(per_class: int = 5) -> bytes:
    """A tiny flower_photos.tgz laid out as TensorFlow's."""
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode='w:gz') as tar:
        for label, folder in enumerate(TF_FOLDERS):
            for i in range(per_class):
                ok, jpg = cv2.imencode('.jpg',
                                       make_flower_image(label, rng, TINY_IMG))
                info = tarfile.TarInfo(f'flower_photos/{folder}/{i}.jpg')
                info.size = len(jpg)
                tar.addfile(info, io.BytesIO(jpg.tobytes()))
    return buf.getvalue()


def readme_train_command(*cfg_options) -> list:
    """The README's train line, with ``--cfg-options`` appended."""
    args = shlex.split(readme_quick_start()[1])
    assert args[0] == 'python'
    return args[1:] + ['--cfg-options', *cfg_options]


def test_train_line_prepares_the_data_once(tmp_path, http_server,
                                           pretrained_ckpt):
    _, base = http_server
    archive = flower_photos_tgz()
    assert len(archive) < 2**20  # so the size is logged in KiB
    HTTPFiles.payloads['/flower_photos.tgz'] = archive
    data_root = tmp_path / 'data' / 'flower_dataset'
    options = tiny_cfg_options(data_root, pretrained_ckpt, epochs=1) + [
        f'train_dataloader.dataset.prepare_source={base}/flower_photos.tgz'
    ]
    first = run_tool(  # a new interpreter: the line exactly as typed
        readme_train_command(*options) + ['--work-dir', tmp_path / 'w1'],
        cwd=REPO_ROOT, fresh=True)
    # One line says what happens, where, and how large the download is.
    announce = [
        line for line in first.stdout.splitlines() if 'No flower split' in line
    ]
    assert len(announce) == 1, first.stdout[-3000:]
    assert (f'No flower split in {data_root} yet: downloading '
            f'flower_photos.tgz ({len(archive) / 2**10:.1f} KiB) from '
            f'{base}/flower_photos.tgz, verifying every image and splitting '
            'it 8:2 into train/ and val/ there') in announce[0]
    assert HTTPFiles.requests == [('HEAD', '/flower_photos.tgz'),
                                  ('GET', '/flower_photos.tgz')]
    for split, n in (('train', 4), ('val', 1)):
        for cls in ('daisy', 'dandelion', 'rose', 'sunflower', 'tulip'):
            assert len(list((data_root / split / cls).iterdir())) == n
    assert 'Epoch(train) [1][4/4]' in first.stdout
    assert list((tmp_path / 'w1').glob('best_accuracy_top1_epoch_1.pth'))

    # Again, with the config the run dumped: the split is used as it is,
    # not one request to the server. (Datasets built in-process: a second
    # tools/train.py would build the same two, at the cost of a training.)
    listing = sorted(p.relative_to(data_root) for p in data_root.rglob('*'))
    cfg = Config.fromfile(tmp_path / 'w1' / 'resnet50_flowers.py')
    assert cfg.train_dataloader.dataset.prepare_source.startswith(base)
    for loader in (cfg.train_dataloader, cfg.val_dataloader):
        DATASETS.build(loader.dataset)
    assert len(HTTPFiles.requests) == 2
    assert sorted(p.relative_to(data_root)
                  for p in data_root.rglob('*')) == listing


def test_offline_first_run_is_one_error_saying_how_to_get_the_archive(
        tmp_path, http_server, capsys):
    _, base = http_server  # serves nothing: the download fails
    url = f'{base}/flower_photos.tgz'
    data_root = tmp_path / 'flower_dataset'
    # What tools/train.py does around building the dataset.
    with pytest.raises(SystemExit) as exit_info, exit_on_user_error():
        FlowerDataset(
            data_root=str(data_root), data_prefix='train', prepare_source=url)
    message = str(exit_info.value)
    assert message.startswith(f'error: could not download {url}: HTTP 404')
    assert '\n' not in message
    assert ('Download it by hand (e.g. in a browser) and pass the file: '
            'python tools/prepare_flowers.py /path/to/flower_photos.tgz '
            f'--out {data_root}') in message
    assert HTTPFiles.requests == [('HEAD', '/flower_photos.tgz'),
                                  ('GET', '/flower_photos.tgz')]
    assert not (data_root / 'train').exists()
