"""Fixtures: a tiny learnable flower dataset and a local "pretrained" model.

Nothing here touches the network: the ImageNet checkpoint the configs name is
replaced by one the fixture writes in MMPretrain's format.
"""
import atexit
import http.server
import importlib.util
import json
import os
import os.path as osp
import pickle
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import flower_mm.registration  # noqa: F401  (as the configs do)
from flower_mm.datasets import FLOWER_CLASSES
from tool_forkserver import ToolForkServer

REPO_ROOT = Path(__file__).resolve().parents[1]

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


def write_flower_split(root: Path, split: str, per_class: int, seed: int,
                       make_image=make_flower_image) -> None:
    rng = np.random.default_rng(seed)
    for label, name in enumerate(FLOWER_CLASSES):
        cls_dir = root / split / name
        cls_dir.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            cv2.imwrite(
                str(cls_dir / f'{name}_{i:03d}.jpg'), make_image(label, rng))


def make_flower_dataset(root: Path, train_per_class=4, val_per_class=3):
    write_flower_split(root, 'train', train_per_class, seed=1)
    write_flower_split(root, 'val', val_per_class, seed=2)
    return root


@pytest.fixture(scope='session', autouse=True)
def isolated_cache_dir(tmp_path_factory):
    """flower-mm's cache (image-check verdicts) and Inductor's compile cache
    in temporary folders, for the tests and the tools they start, never the
    user's: the session's compiled tests compile from scratch once, then
    share what they compiled."""
    os.environ['FLOWER_MM_CACHE_DIR'] = str(tmp_path_factory.mktemp('cache'))
    os.environ['TORCHINDUCTOR_CACHE_DIR'] = str(
        tmp_path_factory.mktemp('inductor_cache'))


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


def make_calibrated_checkpoint(path: Path, data_root: Path, size: int = 64,
                               residual_gain=None) -> Path:
    """A ResNet-50 "pretrained" on nothing, whose BN statistics fit the data.

    A random checkpoint keeps BN statistics of mean 0 / variance 1 while its
    activations are far larger, so its frozen stages feed garbage in eval
    mode and no run learns reliably in a few epochs. ``residual_gain`` sets
    every block's last BN scale: 0.2 keeps the residual sum, and so the
    pooled features, at the size of ImageNet weights' (mean ~0.5), where the
    recipe's lr 0.01 is stable; PyTorch's default init makes them 4x larger.
    """
    from mmpretrain.models import ResNet
    from mmpretrain.models.backbones.resnet import Bottleneck
    torch.manual_seed(0)
    backbone = ResNet(depth=50)
    for module in backbone.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None  # cumulative average over the batch
            module.reset_running_stats()
        if residual_gain is not None and isinstance(module, Bottleneck):
            torch.nn.init.constant_(module.norm3.weight, residual_gain)
    images = [
        cv2.resize(cv2.imread(str(p)), (size, size))[..., ::-1]
        for p in sorted(data_root.glob('train/*/*.jpg'))
    ]
    x = torch.from_numpy(np.stack(images).copy()).permute(0, 3, 1, 2).float()
    x = (x - torch.tensor([123.675, 116.28, 103.53]).view(1, 3, 1, 1)) / \
        torch.tensor([58.395, 57.12, 57.375]).view(1, 3, 1, 1)
    backbone.train()  # mmpretrain's ResNet.train() returns None
    with torch.no_grad():
        backbone(x)
    state_dict = {f'backbone.{k}': v for k, v in backbone.state_dict().items()}
    torch.save({'meta': {}, 'state_dict': state_dict}, path)
    return path


#: prepare_flowers(...) options for tests: no progress bars, no log.
PREPARE_QUIET = dict(progress=False, logger='silent', workers=2)


def random_jpeg(seed: int, size: int = 32) -> bytes:
    """A decodable JPEG of seeded noise, for archives and folders."""
    import io

    from PIL import Image
    rng = np.random.RandomState(seed)
    buf = io.BytesIO()
    Image.fromarray((rng.rand(size, size, 3) * 255).astype('uint8')).save(
        buf, 'JPEG', quality=90)
    return buf.getvalue()

def tiny_cfg_options(data_root: Path, checkpoint: Path, epochs: int = 2,
                     batch_size: int = 5, size: int = IMG_SIZE,
                     val_batch_size: int = None,
                     val_resize: int = None) -> list:
    """--cfg-options shrinking a flower config: data root, image size,
    epochs, batch size and the pretrained checkpoint, nothing else. Eval
    images are resized to ``val_resize`` (default size + 8) and cropped to
    ``size``."""
    opts = [
        f'model.backbone.init_cfg.checkpoint={checkpoint}',
        f'train_cfg.max_epochs={epochs}',
        f'train_dataloader.batch_size={batch_size}',
        f'train_dataloader.dataset.pipeline.1.scale={size}',
    ]
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        opts.append(f'{loader}.dataset.data_root={data_root}')
    for loader in ('val_dataloader', 'test_dataloader'):
        opts += [
            f'{loader}.batch_size={val_batch_size or batch_size}',
            f'{loader}.dataset.pipeline.1.scale={val_resize or size + 8}',
            f'{loader}.dataset.pipeline.2.crop_size={size}',
        ]
    return opts


def tool_env(env=None) -> dict:
    """The tests' environment with ``env``'s changes (None: unset)."""
    full_env = dict(os.environ, **(env or {}))
    return {k: v for k, v in full_env.items() if v is not None}


TOOL_FORK_SERVER = ToolForkServer()
atexit.register(TOOL_FORK_SERVER.close)


def run_tool(args, cwd, env=None, check=True, timeout=600, fresh=False):
    """Run ``python ARGS`` as a user would, returning the CompletedProcess.

    A script runs in a fork of an interpreter that has imported the stack
    already (tests/tool_forkserver.py): the same process, minus ~9 s;
    ``fresh``: in a new interpreter, exactly as typed. ``env`` adds to the
    tests' environment; a None value removes the variable.
    """
    full_env = tool_env(env)
    argv = [str(a) for a in args]
    if not fresh and TOOL_FORK_SERVER.can_run(argv, full_env):
        proc = TOOL_FORK_SERVER.run(argv, cwd, full_env, timeout)
    else:
        proc = subprocess.run([sys.executable, *argv],
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


def start_tool(args, cwd, log_path, env=None):
    """Start ``python ARGS`` in the background, appending its stdout and
    stderr to ``log_path``; a Popen-like handle (pid, poll, wait), the run
    in a process group of its own (kill it with its data workers)."""
    full_env = tool_env(env)
    argv = [str(a) for a in args]
    if TOOL_FORK_SERVER.can_run(argv, full_env):
        return TOOL_FORK_SERVER.start(argv, cwd, full_env, log_path, log_path)
    with open(log_path, 'a') as log:
        return subprocess.Popen([sys.executable, *argv], cwd=cwd,
                                env=full_env, stdout=log,
                                stderr=subprocess.STDOUT,
                                start_new_session=True)


def run_at_once(work, times: int = 3):
    """``work()`` in ``times`` threads started together, as the ranks of a
    distributed run: (the values returned, the exceptions raised)."""
    results, errors = [], []

    def run():
        try:
            results.append(work())
        except Exception as e:  # noqa: BLE001 (returned to the test)
            errors.append(e)

    threads = [threading.Thread(target=run) for _ in range(times)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, errors


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


@pytest.fixture
def disk_full_on(monkeypatch):
    """Make the n-th write of a file end with ENOSPC after half its bytes,
    as a filling disk does (flower_mm/fileio's local_atomic backend)."""
    import errno

    import flower_mm.fileio.atomic_local_backend as atomic_local_backend
    real_open = open

    def arm(name: str, nth: int = 1) -> None:
        seen = []

        class HalfWriter:

            def __init__(self, file):
                self.file = file

            def write(self, data):
                self.file.write(data[:len(data) // 2])
                self.file.flush()
                raise OSError(errno.ENOSPC, 'No space left on device')

            def __getattr__(self, attr):
                return getattr(self.file, attr)

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.file.close()

        def failing_open(path, mode='r', *args, **kwargs):
            file = real_open(path, mode, *args, **kwargs)
            if Path(path).name.startswith(name + '.tmp-'):
                seen.append(path)
                if len(seen) == nth:
                    return HalfWriter(file)
            return file

        monkeypatch.setattr(
            atomic_local_backend, 'open', failing_open, raising=False)

    return arm


def keep_for_docs(path, name=None) -> None:
    """With FLOWER_MM_DOCS_IMAGES=1, copy a picture a test made to
    docs/_static/ (how the README's pictures are made)."""
    if os.environ.get('FLOWER_MM_DOCS_IMAGES', '0') not in ('', '0'):
        import shutil
        shutil.copyfile(path, REPO_ROOT / 'docs' / '_static' /
                        (name or Path(path).name))


def load_script(path) -> object:
    """A script (tools/*.py, benchmarks/*.py) as a module, without running
    its ``__main__`` block, to call its ``main()`` or parser here."""
    path = Path(path)
    spec = importlib.util.spec_from_file_location(
        f'script_{path.parent.name}_{path.stem}', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_tool(name: str):
    """tools/<name>.py as a module (:func:`load_script`)."""
    return load_script(REPO_ROOT / 'tools' / f'{name}.py')


# ------------------------------------------- a model that has really learned
# Classes told apart by stripe orientation and colour: horizontal or vertical
# stripes, red or blue (BGR), and a green checkerboard. The recipe's flips
# keep each class; a transposed or rotated crop swaps horizontal and
# vertical, and a BGR/RGB mix-up swaps red and blue, so either bug costs
# most of the accuracy.
STRIPE_CLASSES = [((40, 40, 210), 'horizontal'), ((40, 40, 210), 'vertical'),
                  ((210, 60, 30), 'horizontal'), ((210, 60, 30), 'vertical'),
                  ((40, 180, 40), 'checkerboard')]
LEARNED_SIZE = 48  # train crop and eval centre crop, px


def make_stripe_image(label: int, rng: np.random.Generator,
                      size: int = 64) -> np.ndarray:
    """Stripes of a random period (7-12 px) and phase, with noise."""
    colour, pattern = STRIPE_CLASSES[label]
    period = rng.uniform(7, 12)
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float32)
    across_rows = np.sin(2 * np.pi * (rows + rng.uniform(0, period)) /
                         period) > 0
    across_cols = np.sin(2 * np.pi * (cols + rng.uniform(0, period)) /
                         period) > 0
    lit = {
        'horizontal': across_rows,
        'vertical': across_cols,
        'checkerboard': across_rows ^ across_cols
    }[pattern]
    img = np.where(lit[..., None],
                   np.float32(colour) * rng.uniform(0.8, 1.15),
                   rng.uniform(20, 70))
    img += rng.normal(0, 15, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def make_stripe_dataset(root: Path, train_per_class=8, val_per_class=4):
    """train/ and val/ class folders (the flower names) of stripe images."""
    write_flower_split(root, 'train', train_per_class, 1, make_stripe_image)
    write_flower_split(root, 'val', val_per_class, 2, make_stripe_image)
    return root


@dataclass(frozen=True)
class LearnedModel:
    """A checkpoint that tools/train.py trained on the stripe task."""
    config: str  # the shipped config it was trained with
    checkpoint: Path  # the last epoch's checkpoint (not the best)
    pretrained: Path  # the weights training started from
    cfg_options: list  # KEY=VALUE for tools/test.py, infer.py, export.py
    data_root: Path  # train/ and val/ class folders
    classes: list
    work_dir: Path
    val_images: list  # str paths, sorted by class then name
    val_labels: list
    train_log: str  # tools/train.py's stdout and stderr
    scalars: list  # the run's vis_data/scalars.json records

    @property
    def val_accuracies(self) -> list:
        """Val top-1 (%) after each epoch, through the eval pipeline."""
        return [s['accuracy/top1'] for s in self.scalars
                if 'accuracy/top1' in s]

    @property
    def train_losses(self) -> list:
        return [s['loss'] for s in self.scalars if 'loss' in s]

    @property
    def one_photo_per_class(self) -> list:
        """The first val image of each class, as Paths, in class order."""
        return [Path(self.val_images[self.val_labels.index(label)])
                for label in range(len(self.classes))]


LEARNED_EPOCHS = 5


@pytest.fixture(scope='session')
def learned_model(tmp_path_factory) -> LearnedModel:
    """ResNet-50 trained by tools/train.py on configs/resnet50_flowers.py.

    Only sizes and the epoch count are reduced (and the loss logged every
    iteration); it reaches ~100 % val top-1 in 5 epochs of 5 iterations.
    """
    root = tmp_path_factory.mktemp('learned')
    data_root = make_stripe_dataset(root / 'flower_dataset')
    pretrained = make_calibrated_checkpoint(
        root / 'resnet50_calibrated.pth', data_root, size=LEARNED_SIZE,
        residual_gain=0.2)
    config = config_path('resnet50_flowers.py')
    # The shipped pipeline, optimiser and schedule; only sizes reduced.
    options = tiny_cfg_options(
        data_root, pretrained, epochs=LEARNED_EPOCHS, batch_size=8,
        size=LEARNED_SIZE, val_batch_size=20,
        val_resize=LEARNED_SIZE + LEARNED_SIZE // 8)
    work_dir = root / 'resnet50_flowers'
    proc = run_tool([
        REPO_ROOT / 'tools' / 'train.py', config, '--work-dir', work_dir,
        '--tensorboard',  # its event files are tested too
        '--cfg-options', *options, 'default_hooks.logger.interval=1'
    ], cwd=root, timeout=1800)  # ~1 min alone; far more on a busy machine
    scalars = next(work_dir.glob('*/vis_data/scalars.json'))
    val_images = sorted(data_root.glob('val/*/*.jpg'))
    model = LearnedModel(
        config=config,
        checkpoint=work_dir / f'epoch_{LEARNED_EPOCHS}.pth',
        pretrained=pretrained,
        cfg_options=options,
        data_root=data_root,
        classes=list(FLOWER_CLASSES),
        work_dir=work_dir,
        val_images=[str(p) for p in val_images],
        val_labels=[FLOWER_CLASSES.index(p.parent.name) for p in val_images],
        train_log=proc.stdout + proc.stderr,
        scalars=[json.loads(line) for line in
                 scalars.read_text().splitlines()])
    assert model.checkpoint.is_file(), sorted(work_dir.iterdir())
    # Learned, judged at the last epoch: a broken pipeline (transposed crop,
    # BGR/RGB mix-up, shuffled labels) stays near 20 % (test_learning.py).
    assert model.val_accuracies[-1] >= 90, model.val_accuracies
    return model



@pytest.fixture(scope='session')
def exported_model(learned_model, tmp_path_factory):
    """``learned_model`` exported by tools/export.py in every format (int8
    calibrated on 4 training photos, checked on the 20 val photos):
    ``dir``, ``int8`` (its .int8.onnx), ``onnx``, ``openvino`` (.xml),
    ``openvino_int8`` (.int8.xml) and the tool's ``stdout``."""
    from types import SimpleNamespace
    out_dir = tmp_path_factory.mktemp('exported') / 'export'
    proc = run_tool([
        REPO_ROOT / 'tools' / 'export.py', learned_model.config,
        learned_model.checkpoint, '--format', 'torchscript', 'onnx',
        'onnx-int8', 'openvino', 'openvino-int8', '--out', out_dir,
        '--check-images',
        *learned_model.val_images[::7],  # daisy, dandelion, sunflower
        '--calib-images', '4', '--cfg-options', *learned_model.cfg_options
    ], cwd=out_dir.parent)
    name = out_dir / 'resnet50_flowers'
    return SimpleNamespace(dir=out_dir, stdout=proc.stdout,
                           onnx=Path(f'{name}.onnx'),
                           int8=Path(f'{name}.int8.onnx'),
                           openvino=Path(f'{name}.xml'),
                           openvino_int8=Path(f'{name}.int8.xml'))

@pytest.fixture(scope='session')
def mmpretrain_scores(learned_model) -> np.ndarray:
    """MMPretrain's ImageClassificationInferencer (PyTorch float32) on
    ``learned_model``'s val photos: the [20, 5] scores every inference path
    and backend is compared with."""
    from mmengine.config import Config
    from mmpretrain.apis import ImageClassificationInferencer

    from flower_mm.experiments import parse_cfg_options
    from flower_mm.utils import merge_cfg_options
    cfg = merge_cfg_options(Config.fromfile(learned_model.config),
                            parse_cfg_options(learned_model.cfg_options))
    inferencer = ImageClassificationInferencer(
        model=cfg, pretrained=str(learned_model.checkpoint), device='cpu')
    assert list(inferencer.classes) == list(FLOWER_CLASSES)
    results = inferencer(learned_model.val_images, batch_size=8)
    assert len(results) == len(learned_model.val_images)
    scores = np.stack([r['pred_scores'] for r in results])
    # Comparisons against these scores mean something only if they vary.
    assert_answers_vary(scores, learned_model.val_labels)
    return scores


@pytest.fixture(scope='session')
def photo_sensitive_checkpoint(tmp_path_factory):
    """The project's ResNet-50 at MMPretrain's default initialisation:
    unlike ``learned_model``, its top-1 changes from one colour-blob photo
    (``flower_data_root``) to the next, so a broken quantization shows in
    the agreement (it answers one class for every stripe photo)."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    cfg = Config.fromfile(config_path('resnet50_flowers.py'))
    cfg.model.backbone.pop('init_cfg')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    path = tmp_path_factory.mktemp('init') / 'init.pth'
    torch.save({'state_dict': model.state_dict(),
                'meta': {'dataset_meta': {'classes': list(FLOWER_CLASSES)}}},
               path)
    return path


@pytest.fixture(scope='session')
def constant_images(tmp_path_factory) -> Path:
    """A folder of three single-value images (black, grey, white): what
    int8 must not be calibrated on."""
    folder = tmp_path_factory.mktemp('constant')
    for value in (0, 128, 255):
        cv2.imwrite(str(folder / f'{value}.png'),
                    np.full((80, 80, 3), value, np.uint8))
    return folder


# Softmax scores of one model for one image from two paths: equal to float32
# rounding when both run in fp32 (another summation order, channels-last),
# to bf16's 8-bit mantissa when either runs under bf16 autocast (0.004 seen
# on learned_model).
FP32_SCORE_ATOL = 1e-5
BF16_SCORE_ATOL = 3e-2


def score_atol(*cast_dtypes) -> float:
    """The tolerance for scores of paths run at these autocast dtypes
    (None: fp32)."""
    return BF16_SCORE_ATOL if torch.bfloat16 in cast_dtypes \
        else FP32_SCORE_ATOL


def assert_answers_vary(scores, labels=None, min_classes=4,
                        min_spread=0.5) -> None:
    """Before two paths are compared: their answers are not nearly constant.

    scores: [images, classes] softmax scores of the reference path.
    """
    scores = np.asarray(scores)
    predicted = scores.argmax(1)
    assert len(set(predicted.tolist())) >= min_classes, predicted
    # each class's score goes from low on some images to high on others
    spread = scores.max(0) - scores.min(0)
    assert spread.min() >= min_spread, spread
    if labels is not None:
        assert (predicted == np.asarray(labels)).mean() >= 0.9, predicted


# ----------------------------------------------- checkpoints that run code
#: The refusal of a crafted checkpoint; ``.format(path or URL)``.
REFUSED = 'refused to load checkpoint "{}": it contains code or objects ' \
    'outside the allow-list'


class RunsCommand:
    """Unpickles as ``os.system(command)``."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command, )


def write_malicious_checkpoint(path, marker, legacy=False):
    """A checkpoint in MMPretrain's layout whose meta runs `touch marker`."""
    checkpoint = {
        'meta': RunsCommand(f'touch {marker}'),
        'state_dict': {
            'head.fc.bias': torch.zeros(5)
        }
    }
    if legacy:  # a plain pickle, as torch.save before 1.6 wrote
        with open(path, 'wb') as f:
            pickle.dump(checkpoint, f)
    else:
        torch.save(checkpoint, path)
    return path
