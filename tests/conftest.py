"""Fixtures: a tiny learnable flower dataset and a local "pretrained" model.

Nothing here touches the network: the ImageNet checkpoint the configs name is
replaced by one the fixture writes in MMPretrain's format.
"""
import importlib.util
import http.server
import os
import os.path as osp
import subprocess
import sys
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from flower_mm.datasets import FLOWER_CLASSES  # noqa: E402

# One strongly separated colour (BGR) per class, so the synthetic task is
# learnable in a few iterations even from a random backbone.
CLASS_COLOURS = [(255, 255, 255), (0, 255, 255), (0, 0, 255), (0, 128, 0),
                 (255, 0, 255)]
IMG_SIZE = 64
TINY_IMG = 48


def make_flower_image(label: int, rng: np.random.Generator,
                      size: int = TINY_IMG) -> np.ndarray:
    """A noisy image of the class colour with a random dark blob."""
    img = np.empty((size, size, 3), np.float32)
    img[:] = CLASS_COLOURS[label]
    img += rng.normal(0, 20, img.shape)
    cx, cy = rng.integers(8, size - 8, 2)
    cv2.circle(img, (int(cx), int(cy)), int(rng.integers(3, 8)), (20, 20, 20),
               -1)
    return np.clip(img, 0, 255).astype(np.uint8)


def write_flower_split(root: Path, split: str, per_class: int,
                       seed: int) -> None:
    rng = np.random.default_rng(seed)
    for label, name in enumerate(FLOWER_CLASSES):
        cls_dir = root / split / name
        cls_dir.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            cv2.imwrite(
                str(cls_dir / f'{name}_{i:03d}.jpg'),
                make_flower_image(label, rng))


def make_flower_dataset(root: Path, train_per_class=4, val_per_class=3):
    write_flower_split(root, 'train', train_per_class, seed=1)
    write_flower_split(root, 'val', val_per_class, seed=2)
    return root


@pytest.fixture(scope='session', autouse=True)
def isolated_cache_dir(tmp_path_factory):
    """flower-mm's cache (image-check verdicts) in a temporary folder, for
    the tests and the tools they start, never the user's."""
    os.environ['FLOWER_MM_CACHE_DIR'] = str(tmp_path_factory.mktemp('cache'))


@pytest.fixture(scope='session')
def flower_data_root(tmp_path_factory) -> Path:
    """data/flower_dataset with train/ (4 per class) and val/ (3 per class)."""
    return make_flower_dataset(
        tmp_path_factory.mktemp('data') / 'flower_dataset')


def make_pretrained_checkpoint(path: Path, depth: int = 50,
                               seed: int = 0) -> Path:
    """An ImageNet-like ResNet checkpoint in MMPretrain's format."""
    from mmpretrain.models import ResNet
    torch.manual_seed(seed)
    backbone = ResNet(depth=depth)  # PyTorch's default init, seeded
    state_dict = {f'backbone.{k}': v for k, v in backbone.state_dict().items()}
    out_channels = 2048 if depth >= 50 else 512
    state_dict['head.fc.weight'] = torch.randn(1000, out_channels) * 0.01
    state_dict['head.fc.bias'] = torch.zeros(1000)
    torch.save({'meta': {'epoch': 100}, 'state_dict': state_dict}, path)
    return path


@pytest.fixture(scope='session')
def pretrained_ckpt(tmp_path_factory) -> Path:
    return make_pretrained_checkpoint(
        tmp_path_factory.mktemp('ckpt') / 'resnet50_in1k.pth')


@pytest.fixture(scope='session')
def resnet18_ckpt(tmp_path_factory) -> Path:
    """A ResNet-18 checkpoint in MMPretrain's format."""
    return make_pretrained_checkpoint(
        tmp_path_factory.mktemp('ckpt') / 'resnet18_in1k.pth', depth=18)


def make_densenet_checkpoint(path: Path, arch: str = '121',
                             seed: int = 0) -> Path:
    """An ImageNet-like DenseNet checkpoint in MMPretrain's format."""
    from mmpretrain.models import DenseNet
    torch.manual_seed(seed)
    backbone = DenseNet(arch=arch)
    state_dict = {f'backbone.{k}': v for k, v in backbone.state_dict().items()}
    out_channels = backbone.transitions[-1][0].num_features
    state_dict['head.fc.weight'] = torch.randn(1000, out_channels) * 0.01
    state_dict['head.fc.bias'] = torch.zeros(1000)
    torch.save({'meta': {'epoch': 90}, 'state_dict': state_dict}, path)
    return path


def tiny_cfg_options(data_root: Path, checkpoint: Path, epochs: int = 2,
                     batch_size: int = 5) -> list:
    """--cfg-options shrinking a flower config: data root, image size,
    epochs, batch size and the pretrained checkpoint, nothing else."""
    opts = [
        f'model.backbone.init_cfg.checkpoint={checkpoint}',
        f'train_cfg.max_epochs={epochs}',
        f'train_dataloader.batch_size={batch_size}',
        f'train_dataloader.dataset.pipeline.1.scale={IMG_SIZE}',
    ]
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        opts.append(f'{loader}.dataset.data_root={data_root}')
    for loader in ('val_dataloader', 'test_dataloader'):
        opts += [
            f'{loader}.batch_size={batch_size}',
            f'{loader}.dataset.pipeline.1.scale={IMG_SIZE + 8}',
            f'{loader}.dataset.pipeline.2.crop_size={IMG_SIZE}',
        ]
    return opts


def run_tool(args, cwd, env=None, check=True, timeout=600):
    """Run a command as a user would, returning the CompletedProcess."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    proc = subprocess.run([sys.executable, *map(str, args)],
                          cwd=cwd,
                          env=full_env,
                          capture_output=True,
                          text=True,
                          timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(
            f'{args} exited {proc.returncode}\nstdout:\n{proc.stdout[-5000:]}'
            f'\nstderr:\n{proc.stderr[-5000:]}')
    return proc


@pytest.fixture
def repo_root() -> Path:
    return REPO_ROOT


def config_path(name: str) -> str:
    return osp.join(REPO_ROOT, 'configs', name)


def assert_user_error(proc, *fragments) -> str:
    """Assert a tool failed with one `error: ...` line (no traceback) that
    contains every fragment; return that line."""
    assert proc.returncode != 0, f'expected a failure:\n{proc.stdout[-3000:]}'
    assert 'Traceback' not in proc.stderr, proc.stderr[-5000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith('error: '), proc.stderr[-5000:]
    for fragment in fragments:
        assert fragment in last, f'{fragment!r} not in {last!r}'
    return last


def checkpoints_under(path: Path) -> list:
    """The .pth files anywhere under path."""
    return sorted(Path(path).rglob('*.pth'))


class HTTPFiles(http.server.BaseHTTPRequestHandler):
    """Serves ``payloads`` for the ``http_server`` fixture, failing on
    request, and counts what it was asked."""
    payloads = {}  # path -> bytes
    failures = {}  # path -> (mode, how many requests still fail)
    hits = {}  # path -> GET requests
    requests = []  # (method, path), every request

    def do_HEAD(self):  # noqa: N802
        self.requests.append(('HEAD', self.path))
        data = self.payloads.get(self.path)
        if data is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()

    def do_GET(self):  # noqa: N802
        self.requests.append(('GET', self.path))
        self.hits[self.path] = self.hits.get(self.path, 0) + 1
        data = self.payloads.get(self.path)
        mode, left = self.failures.get(self.path, ('', 0))
        if left:
            self.failures[self.path] = (mode, left - 1)
        if data is None:
            self.send_error(404)
        elif left and mode == '503':
            self.send_error(503, 'Service Unavailable')
        elif left and mode == 'short':  # promise more than is sent
            self.send_response(200)
            self.send_header('Content-Length', str(len(data)))
            self.end_headers()
            self.wfile.write(data[:len(data) // 2])
            self.close_connection = True
        else:
            self.send_response(200)
            self.send_header('Content-Length', str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def http_server(monkeypatch):
    """(server, base URL) of :class:`HTTPFiles` on 127.0.0.1, a free port;
    no proxy, also for the tools the test starts."""
    for var in ('http_proxy', 'HTTP_PROXY', 'https_proxy', 'HTTPS_PROXY',
                'all_proxy', 'ALL_PROXY'):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv('no_proxy', '127.0.0.1,localhost')
    HTTPFiles.payloads, HTTPFiles.failures = {}, {}
    HTTPFiles.hits, HTTPFiles.requests = {}, []
    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), HTTPFiles)
    thread = threading.Thread(
        target=httpd.serve_forever, args=(0.05, ), daemon=True)
    thread.start()
    yield httpd, f'http://127.0.0.1:{httpd.server_address[1]}'
    httpd.shutdown()
    httpd.server_close()


def keep_for_docs(path, name=None) -> None:
    """With FLOWER_MM_DOCS_IMAGES=1, copy a picture a test made to
    docs/_static/ (how the README's pictures are made)."""
    if os.environ.get('FLOWER_MM_DOCS_IMAGES', '0') not in ('', '0'):
        import shutil
        shutil.copyfile(path, REPO_ROOT / 'docs' / '_static' /
                        (name or Path(path).name))


def load_tool(name: str):
    """tools/<name>.py as a module, to call its parser or helpers."""
    spec = importlib.util.spec_from_file_location(
        f'tool_{name}', REPO_ROOT / 'tools' / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='session')
def trained_model(tmp_path_factory, flower_data_root, pretrained_ckpt):
    """A checkpoint from `tools/train.py` (1 epoch on the tiny data), once
    per session: ``config``, ``checkpoint``, the ``options`` it was trained
    with (pass them as --cfg-options) and one val image per class."""
    from types import SimpleNamespace
    cwd = tmp_path_factory.mktemp('trained_model')
    config = config_path('resnet50_flowers.py')
    options = tiny_cfg_options(flower_data_root, pretrained_ckpt, epochs=1)
    run_tool([REPO_ROOT / 'tools' / 'train.py', config, '--cfg-options',
              *options], cwd=cwd)
    checkpoint = cwd / 'work_dirs' / 'resnet50_flowers' / 'epoch_1.pth'
    assert checkpoint.is_file()
    val_images = [
        sorted((flower_data_root / 'val' / c).glob('*.jpg'))[0]
        for c in FLOWER_CLASSES
    ]
    return SimpleNamespace(config=config, checkpoint=checkpoint,
                           options=options, val_images=val_images)
