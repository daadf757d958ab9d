"""Safe checkpoint loading under torch >= 2.6 (flower_mm.compat)."""
import pickle

import numpy as np
import pytest
import torch
from conftest import HTTPFiles, write_malicious_checkpoint
from mmengine.logging import HistoryBuffer, MessageHub
from mmengine.runner.checkpoint import CheckpointLoader

import flower_mm.compat  # noqa: F401


def test_message_hub_state_loads_with_weights_only(tmp_path):
    hub = MessageHub.get_instance('compat_test')
    for loss in (0.9, 0.5, 0.1):
        hub.update_scalar('train/loss', loss)
    hub.update_info('seed', np.int64(3))
    path = tmp_path / 'ckpt.pth'
    torch.save({'message_hub': hub.state_dict(), 'w': torch.ones(2)}, path)

    loaded = torch.load(path, weights_only=True)
    buffer = loaded['message_hub']['log_scalars']['train/loss']
    assert isinstance(buffer, HistoryBuffer)
    assert buffer.mean() == pytest.approx(0.5)
    assert buffer.current() == pytest.approx(0.1)
    assert loaded['message_hub']['runtime_info']['seed'] == 3


def test_history_buffer_is_pickled_without_getattr():
    buffer = HistoryBuffer()
    buffer.update(2.0)
    data = pickle.dumps(buffer, protocol=2)
    assert b'getattr' not in data
    restored = pickle.loads(data)
    assert restored.max() == 2.0 and restored.statistics('min') == 2.0


def test_crafted_local_checkpoint_is_refused_without_running_code(tmp_path):
    marker = tmp_path / 'pwned'
    path = tmp_path / 'evil.pth'
    write_malicious_checkpoint(path, marker)
    with pytest.raises(pickle.UnpicklingError, match='system'):
        CheckpointLoader.load_checkpoint(str(path), map_location='cpu')
    assert not marker.exists()


def test_crafted_checkpoint_over_http_is_refused_without_running_code(
        tmp_path, monkeypatch, http_server):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    marker = tmp_path / 'pwned'
    _, url = http_server
    HTTPFiles.payloads['/evil.pth'] = write_malicious_checkpoint(
        tmp_path / 'evil.pth', marker).read_bytes()
    with pytest.raises(pickle.UnpicklingError, match='system'):
        CheckpointLoader.load_checkpoint(f'{url}/evil.pth', map_location='cpu')
    assert not marker.exists()


@pytest.mark.parametrize('backend', ['cv2', 'pillow'])
def test_mmcv_hue_shift_takes_negative_factors_as_numpy_1_did(backend):
    """mmcv.adjust_hue(img, -0.1) turns hues by -25 of 256 steps (231
    forward, uint8), which numpy 2 refused in mmcv's own code."""
    import cv2
    import mmcv
    from PIL import Image
    img = np.random.default_rng(0).integers(0, 256, (8, 10, 3), np.uint8)
    if backend == 'cv2':
        hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV_FULL)
        hsv[..., 0] += np.uint8(231)
        expected = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR_FULL)
    else:
        h, s, v = Image.fromarray(img[..., ::-1].copy()).convert(
            'HSV').split()
        h = Image.fromarray(np.asarray(h) + np.uint8(231))
        expected = np.asarray(Image.merge('HSV', (h, s, v)).convert(
            'RGB'))[..., ::-1]
    assert (mmcv.adjust_hue(img, -0.1, backend=backend) == expected).all()
