"""A checkpoint never runs code: crafted pickles are refused everywhere.

The crafted checkpoint is a real torch.save file whose pickle would call
``os.system('touch <marker>')``; each test checks the marker is absent
after the refusal.
"""
import pytest
import torch
from conftest import (REFUSED, REPO_ROOT, HTTPFiles, assert_user_error,
                      checkpoints_under, config_path,
                      make_pretrained_checkpoint, run_tool, tiny_cfg_options,
                      write_malicious_checkpoint)
from mmengine.runner import checkpoint as mmengine_checkpoint
from mmengine.runner.checkpoint import CheckpointLoader

from flower_mm.compat import UnsafeCheckpointError

TRAIN = REPO_ROOT / 'tools' / 'train.py'
TEST = REPO_ROOT / 'tools' / 'test.py'


@pytest.fixture
def evil(tmp_path):
    """(checkpoint path, marker path the pickle would create)."""
    marker = tmp_path / 'pwned'
    return write_malicious_checkpoint(tmp_path / 'evil.pth', marker), marker


def fresh_torch_home(tmp_path):
    """Downloads go to a fresh cache."""
    return {'TORCH_HOME': str(tmp_path / 'torch_home')}


def test_crafted_checkpoint_would_run_command(tmp_path, evil):
    """The file is really malicious: unsafe loading runs the command."""
    path, marker = evil
    torch.load(path, weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize('legacy', [False, True], ids=['zip', 'legacy'])
def test_local_loader_refuses(tmp_path, legacy, monkeypatch):
    # The variable that turns weights_only off where a caller leaves it out.
    monkeypatch.setenv('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', '1')
    marker = tmp_path / 'pwned'
    path = write_malicious_checkpoint(tmp_path / 'evil.pth', marker, legacy)
    with pytest.raises(UnsafeCheckpointError) as err:
        CheckpointLoader.load_checkpoint(str(path), map_location='cpu')
    assert str(err.value).startswith(REFUSED.format(path))
    assert 'Only load checkpoints you trust' in str(err.value)
    if not legacy:  # torch names the global in zip files
        assert 'it holds posix.system' in str(err.value)
    assert not marker.exists()


def test_torchvision_scheme_uses_safe_http_loader(tmp_path, evil,
                                                  http_server, monkeypatch):
    """torchvision://, open-mmlab:// and mmcls:// call MMEngine's
    module-level load_from_http, which would load with weights_only=False."""
    path, marker = evil
    _, url = http_server
    HTTPFiles.payloads['/evil.pth'] = path.read_bytes()
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    monkeypatch.setattr(mmengine_checkpoint, 'get_torchvision_models',
                        lambda: {'evil': f'{url}/evil.pth'})
    with pytest.raises(UnsafeCheckpointError, match='refused to load'):
        CheckpointLoader.load_checkpoint('torchvision://evil')
    assert not marker.exists()


def test_mmpretrain_get_model_refuses(evil):
    """MMPretrain's get_model, behind its inferencers, loads safely too."""
    from mmpretrain import get_model
    path, marker = evil
    with pytest.raises(UnsafeCheckpointError, match='refused to load'):
        get_model(config_path('resnet50_flowers.py'), pretrained=str(path))
    assert not marker.exists()


def test_published_format_checkpoint_loads(tmp_path):
    """MMPretrain's published {'meta', 'state_dict'} checkpoints load."""
    path = make_pretrained_checkpoint(tmp_path / 'r18.pth', depth=18)
    checkpoint = CheckpointLoader.load_checkpoint(str(path))
    assert checkpoint['meta'] == {'epoch': 100}
    assert checkpoint['state_dict']['head.fc.weight'].shape == (1000, 512)


def tiny(data_root, pretrained):
    return tiny_cfg_options(data_root, pretrained, epochs=1)


def assert_train_refuses(tmp_path, marker, source, *args, env=None):
    """tools/train.py ARGS stops with the refusal naming ``source``: the
    crafted command never ran and no checkpoint was written."""
    proc = run_tool([TRAIN, config_path('resnet50_flowers.py'), *args],
                    cwd=tmp_path, env=env, check=False)
    assert_user_error(proc, REFUSED.format(source))
    assert not marker.exists()
    assert checkpoints_under(tmp_path / 'work_dirs') == []


def test_train_resume_refuses(tmp_path, evil, flower_data_root,
                              pretrained_ckpt):
    path, marker = evil
    assert_train_refuses(tmp_path, marker, path, '--resume', str(path),
                         '--cfg-options',
                         *tiny(flower_data_root, pretrained_ckpt))


def test_train_load_from_refuses(tmp_path, evil, flower_data_root,
                                 pretrained_ckpt):
    path, marker = evil
    assert_train_refuses(tmp_path, marker, path, '--cfg-options',
                         *tiny(flower_data_root, pretrained_ckpt),
                         f'load_from={path}')


def test_pretrained_init_cfg_refuses(tmp_path, evil, flower_data_root):
    path, marker = evil
    assert_train_refuses(tmp_path, marker, path, '--cfg-options',
                         *tiny(flower_data_root, path))


def test_pretrained_url_refuses(tmp_path, evil, http_server,
                                flower_data_root):
    path, marker = evil
    _, url = http_server
    HTTPFiles.payloads['/evil.pth'] = path.read_bytes()
    assert_train_refuses(tmp_path, marker, f'{url}/evil.pth',
                         '--cfg-options',
                         *tiny(flower_data_root, f'{url}/evil.pth'),
                         env=fresh_torch_home(tmp_path))
    # It was downloaded (so the refusal is the loader's), never run.
    assert (tmp_path / 'torch_home' / 'hub' / 'checkpoints' /
            'evil.pth').is_file()


def test_test_tool_refuses(tmp_path, evil, flower_data_root,
                           pretrained_ckpt):
    path, marker = evil
    proc = run_tool([
        TEST,
        config_path('resnet50_flowers.py'),
        str(path), '--cfg-options', *tiny(flower_data_root, pretrained_ckpt)
    ],
                    cwd=tmp_path,
                    check=False)
    assert_user_error(proc, REFUSED.format(path))
    assert not marker.exists()


@pytest.mark.parametrize('tool, extra', [
    ('infer.py', ['--out', 'pred.csv']),
    ('export.py', ['--format', 'onnx', '--out', 'export']),
])
def test_infer_and_export_tools_refuse(tmp_path, evil, flower_data_root,
                                       pretrained_ckpt, tool, extra):
    path, marker = evil
    image = next(flower_data_root.glob('val/*/*.jpg'))
    inputs = [str(image)] if tool == 'infer.py' else []
    proc = run_tool([
        REPO_ROOT / 'tools' / tool,
        config_path('resnet50_flowers.py'),
        str(path), *inputs, *extra, '--cfg-options',
        *tiny(flower_data_root, pretrained_ckpt)
    ],
                    cwd=tmp_path,
                    check=False)
    assert_user_error(proc, REFUSED.format(path))
    assert not marker.exists()
    assert not (tmp_path / 'pred.csv').exists()
    assert not (tmp_path / 'export').exists()
