"""Issue 14 end to end: tools/train.py on a hand-laid folder with a cut
JPEG, an empty .jpg and a text file named .jpg."""
import shutil
import sys

import pytest
from conftest import (REPO_ROOT, assert_user_error, checkpoints_under,
                      config_path, load_tool, make_flower_dataset, run_tool,
                      tiny_cfg_options)
from test_datasets.test_image_check import add_broken_files

TRAIN = REPO_ROOT / 'tools' / 'train.py'
SKIP = ('train_dataloader.dataset.on_broken=skip '
        'val_dataloader.dataset.on_broken=skip '
        'test_dataloader.dataset.on_broken=skip')


@pytest.fixture(scope='module')
def broken_data_root(tmp_path_factory):
    """4 good photos per class in train (20) plus the 3 broken files."""
    root = make_flower_dataset(
        tmp_path_factory.mktemp('data') / 'flower_dataset', 4, 1)
    return root, add_broken_files(root / 'train')


def train(cwd, data_root, ckpt, *extra, config=None):
    """One epoch of the ResNet-18 config (the cheapest) on ``data_root``."""
    return run_tool([
        TRAIN, config or config_path('resnet18_flowers.py'), '--work-dir',
        'work', '--cfg-options',
        *tiny_cfg_options(data_root, ckpt, epochs=1), *extra
    ],
                    cwd=cwd,
                    env={'PYTHONPATH': str(REPO_ROOT / 'tests')},
                    check=False)


def test_default_run_stops_before_training_naming_all_three(
        broken_data_root, resnet18_ckpt, tmp_path):
    data_root, names = broken_data_root
    proc = train(tmp_path, data_root, resnet18_ckpt)
    line = assert_user_error(proc, *names, 'tools/prepare_flowers.py', SKIP)
    assert line.startswith('error: 3 of 23 image files in ')
    assert '[1][' not in proc.stdout  # not one iteration
    assert checkpoints_under(tmp_path) == []
    listed = (tmp_path / 'work' / 'broken_images_train.txt').read_text()
    assert all(name in listed for name in names)


def test_skip_run_trains_on_the_rest_warns_once_and_redraws(broken_data_root,
                                                    resnet18_ckpt, tmp_path):
    """... and a photo deleted after the check is re-drawn and reported."""
    data_root = tmp_path / 'flower_dataset'
    shutil.copytree(broken_data_root[0], data_root)
    names = broken_data_root[1]
    deleted = data_root / 'train' / 'sunflower' / 'sunflower_002.jpg'
    config = tmp_path / 'delete_a_photo.py'
    config.write_text(
        f'_base_ = [{config_path("resnet18_flowers.py")!r}]\n'
        "custom_imports = dict(imports=['flower_mm.registration', "
        "'broken_image_test_hooks'], allow_failed_imports=False)\n"
        f'default_hooks = dict(delete=dict(type="DeletePhotoHook", '
        f'path={str(deleted)!r}))\n')
    proc = train(tmp_path, data_root, resnet18_ckpt, *SKIP.split(),
                 config=str(config))
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = next((tmp_path / 'work').glob('*/*.log')).read_text()
    warnings = [line for line in log.splitlines() if 'Leaving out' in line]
    assert len(warnings) == 1, warnings
    assert all(name in warnings[0] for name in names)
    assert 'per class: daisy 1, rose 1, tulip 1' in warnings[0]
    assert '20 of 23 images remain' in warnings[0]
    # 20 samples in batches of 5: 4 iterations, not the 5 of 23 samples.
    assert 'Epoch(train) [1][4/4]' in log
    redrawn = [line for line in log.splitlines() if 're-drew' in line]
    assert len(redrawn) == 1 and 'Epoch(train) [1]: ' in redrawn[0]
    assert str(deleted) in redrawn[0]
    assert checkpoints_under(tmp_path / 'work')





def test_export_without_the_dataset_asks_for_check_images(
        resnet18_ckpt, tmp_path, monkeypatch):
    # In this process: a subprocess would spend seconds importing torch.
    export_tool = load_tool('export')
    monkeypatch.setattr(sys, 'argv', [
        'export.py',
        config_path('resnet18_flowers.py'),
        str(resnet18_ckpt), '--format', 'onnx', '--out',
        str(tmp_path / 'export'), '--cfg-options',
        f'test_dataloader.dataset.data_root={tmp_path / "no_data"}'
    ])
    with pytest.raises(SystemExit) as exc:
        export_tool.main()
    message = str(exc.value.code)
    assert message.startswith('error: ') and '\n' not in message
    assert '--check-images PHOTO_OR_FOLDER' in message
    assert f'"{tmp_path / "no_data"}" does not exist' in message
    assert not (tmp_path / 'export').exists()


def test_preparation_errors_end_in_one_error_line():
    """`train_dataloader.dataset.prepare=True` offline ends this way."""
    from flower_mm.datasets.preparation import PreparationError
    from flower_mm.utils import exit_on_user_error
    with pytest.raises(SystemExit) as exc:
        with exit_on_user_error():
            raise PreparationError('could not download URL: offline')
    assert exc.value.code == 'error: could not download URL: offline'
