"""Safe checkpoint loading under torch >= 2.6 (flower_mm.compat)."""
import http.server
import os
import pickle
import threading
from functools import partial

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer, MessageHub
from mmengine.runner.checkpoint import CheckpointLoader

import flower_mm.compat  # noqa: F401


class RunsCommand:
    """A pickle payload that would create a file when unpickled."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}', ))


def write_malicious_checkpoint(path, marker):
    torch.save({'state_dict': {}, 'meta': RunsCommand(marker)}, path)


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
        tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    marker = tmp_path / 'pwned'
    served = tmp_path / 'served'
    served.mkdir()
    write_malicious_checkpoint(served / 'evil.pth', marker)
    handler = partial(
        http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f'http://127.0.0.1:{server.server_port}/evil.pth'
        with pytest.raises(pickle.UnpicklingError, match='system'):
            CheckpointLoader.load_checkpoint(url, map_location='cpu')
    finally:
        server.shutdown()
    assert not marker.exists()
