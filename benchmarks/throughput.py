"""Images/s, training and inference: stock recipe, project, plain PyTorch.

    python benchmarks/throughput.py [--quick] [--device {auto,cpu,cuda}]
        [--out-dir DIR] [--batch-size N] [--keep-data]

Measures, one after the other on this machine, each in a fresh process and
on the same JPEG files (500x375 photos written to a temporary folder):

(a) ``stock``: MMPretrain's ``resnet/resnet50_8xb32_in1k.py`` recipe (fp32,
    its data pipeline and loader settings) through MMEngine's Runner, with
    the project's model (ResNet-50, stages up to 2 frozen, 5 classes);
(b) ``project``: ``tools/train.py`` / ``tools/test.py`` on
    ``configs/resnet50_flowers.py`` with its defaults;
(c) ``plain``: a minimal PyTorch loop (torchvision decoding and transforms,
    a torch DataLoader with the project's loader settings) with the same
    model, batch, precision and memory format as (b);

for training and for inference, after warm-up iterations, with the time
spent waiting for data. Without ``--quick`` it adds the project's precision
and memory-format variants, a model-only ceiling on synthetic batches, the
loader's worker count, (c) with the allocator settings of the project's
``MallocTuningHook`` (so that the framework's own cost shows apart from the
allocator's gain; on a CPU), and how the time per epoch grows with batch
size and dataset size. On a GPU the variants always run. Results go to
``--out-dir`` as ``throughput.json`` and ``throughput.png``; the last line
printed is

    train: project/stock X.XX, project/plain Y.YY; infer: project/stock ...
"""
import argparse
import json
import os
import os.path as osp
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

PROJECT_CONFIG = osp.join(REPO_ROOT, 'configs', 'resnet50_flowers.py')
STOCK_CONFIG = 'mmpretrain::resnet/resnet50_8xb32_in1k.py'
PHOTO_SIZE = (500, 375)  # width, height: a typical flower photo
UNIQUE_PHOTOS = 40  # distinct JPEGs; the rest are copies of them

# ---------------------------------------------------------------- the data


def write_photos(root: str, num_train: int, num_val: int, seed=0) -> None:
    """``root/{train,val}/<class>/*.jpg``: 500x375 photo-like JPEGs."""
    import cv2
    import numpy as np

    from flower_mm.datasets import FLOWER_CLASSES as CLASSES
    rng = np.random.default_rng(seed)
    w, h = PHOTO_SIZE
    pool = []
    for _ in range(UNIQUE_PHOTOS):
        # Smooth shapes plus sensor noise: JPEG sizes (~60-90 kB) and decode
        # times like real photos, unlike flat or pure-noise images.
        coarse = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
        img = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
        for _ in range(12):
            centre = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            colour = tuple(int(c) for c in rng.integers(0, 256, 3))
            cv2.circle(img, centre, int(rng.integers(10, 80)), colour, -1)
        img = cv2.GaussianBlur(img, (5, 5), 0)
        img = np.clip(img + rng.normal(0, 6, img.shape), 0, 255)
        pool.append(cv2.imencode('.jpg', img.astype(np.uint8),
                                 [cv2.IMWRITE_JPEG_QUALITY, 92])[1])
    for split, count in (('train', num_train), ('val', num_val)):
        for i in range(count):
            cls = CLASSES[i % len(CLASSES)]
            folder = osp.join(root, split, cls)
            os.makedirs(folder, exist_ok=True)
            pool[i % UNIQUE_PHOTOS].tofile(
                osp.join(folder, f'{i // len(CLASSES):05d}.jpg'))


def write_checkpoint(path: str) -> None:
    """Weights of the project's model in MMPretrain's checkpoint format."""
    import torch
    model = build_project_model()
    torch.save({'meta': {}, 'state_dict': model.state_dict()}, path)


def build_project_model():
    """The project's ImageClassifier, from its config, without init_cfg."""
    import torch
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS

    import flower_mm  # noqa: F401
    cfg = Config.fromfile(PROJECT_CONFIG)
    init_default_scope('mmpretrain')
    cfg.model.backbone.pop('init_cfg', None)
    torch.manual_seed(0)
    return MODELS.build(cfg.model)


# ------------------------------------------------------- what runs in a case


class IterClock:
    """Timestamps iterations: images/s, data wait and step time."""

    def __init__(self, batch_size: int, warmup: int, device: str,
                 total: int):
        self.batch_size, self.warmup, self.device = batch_size, warmup, device
        self.total = total  # iterations in the run, for memory at the end
        self.starts, self.ends = [], []
        self.memory = {}

    def _now(self) -> float:
        if self.device == 'cuda':
            import torch
            torch.cuda.synchronize()
        return time.perf_counter()

    def start(self) -> None:
        self.starts.append(self._now())

    def end(self) -> None:
        self.ends.append(self._now())
        if len(self.ends) == self.total:
            self.memory = memory_footprint(self.device)

    def result(self) -> dict:
        w, n = self.warmup, len(self.ends)
        if n <= w + 1:
            raise RuntimeError(f'only {n} iterations ran; {w} are warm-up')
        elapsed = self.ends[-1] - self.ends[w - 1]
        data = sum(self.starts[i] - self.ends[i - 1] for i in range(w, n))
        return dict(
            images_per_s=self.batch_size * (n - w) / elapsed,
            iter_ms=1e3 * elapsed / (n - w),
            data_ms=1e3 * data / (n - w),
            measured_iters=n - w,
            **self.memory)


def memory_footprint(device: str) -> dict:
    """Peak RSS of this process; PSS of it and its data workers now."""
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    pids = [os.getpid()] + _child_pids(os.getpid())
    pss = sum(_pss_mb(pid) for pid in pids)
    out = dict(peak_rss_mb=peak_rss, total_pss_mb=pss, processes=len(pids))
    if device == 'cuda':
        import torch
        out['cuda_peak_mb'] = torch.cuda.max_memory_allocated() / 2**20
    return out


def _child_pids(pid: int) -> list:
    children = []
    for task in os.listdir(f'/proc/{pid}/task'):
        try:
            with open(f'/proc/{pid}/task/{task}/children') as f:
                children += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return children


def _pss_mb(pid: int) -> float:
    try:
        with open(f'/proc/{pid}/smaps_rollup') as f:
            for line in f:
                if line.startswith('Pss:'):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.


def make_clock_hook(clock: IterClock, mode: str, epochs: list):
    """An MMEngine hook feeding ``clock`` (and epoch times)."""
    from mmengine.hooks import Hook

    class ClockHook(Hook):
        priority = 'LOWEST'  # stamp after the logger and the other hooks

        def _before(self, runner, batch_idx, data_batch=None):
            clock.start()

        def _after(self, runner, batch_idx, data_batch=None, outputs=None):
            clock.end()

        def before_train_epoch(self, runner):
            epochs.append([time.perf_counter()])

        def after_train_epoch(self, runner):
            epochs[-1].append(time.perf_counter())

    setattr(ClockHook, f'before_{mode}_iter', ClockHook._before)
    setattr(ClockHook, f'after_{mode}_iter', ClockHook._after)
    return ClockHook()


def total_iters(case: dict) -> int:
    batches = -(-case['num_images'] // case['batch_size'])
    return batches * case.get('epochs', 1)


def case_cfg_options(case: dict) -> list:
    """--cfg-options pointing a config at the benchmark data."""
    root, n = case['data_root'], case['num_images']
    bs = case['batch_size']
    opts = [
        f'train_dataloader.dataset.data_root={root}',
        f'train_dataloader.dataset.indices={n}',
        f'train_dataloader.batch_size={bs}',
        f'test_dataloader.dataset.data_root={root}',
        f'test_dataloader.dataset.indices={n}',
        f'test_dataloader.batch_size={bs}',
        f'model.backbone.init_cfg.checkpoint={case["checkpoint"]}',
        f'train_cfg.max_epochs={case.get("epochs", 1)}',
        # Saving happens after the measured iterations; skip its time.
        'default_hooks.checkpoint=None',
    ]
    return opts + case.get('extra_options', [])


def run_runner_case(case: dict) -> dict:
    """(a) and (b): build the Runner as the tools do, time it."""
    from mmengine.config import Config, DictAction  # noqa: F401
    from mmengine.runner import Runner

    work_dir = case['work_dir']
    train = case['mode'] == 'train'
    if case['recipe'] == 'project':
        tool = _load_tool('train' if train else 'test')
        argv = [PROJECT_CONFIG] + ([] if train else [case['checkpoint']])
        argv += ['--work-dir', work_dir, '--cfg-options',
                 *case_cfg_options(case)]
        if train:
            argv.insert(1, '--no-validate')
        args = tool.get_args_parser().parse_args(argv)
        cfg = tool.merge_args(Config.fromfile(args.config), args)
    else:
        cfg = stock_config(case)
    # As the tools build it: FlowerRunner resolves num_workers='auto'.
    from mmengine.registry import RUNNERS
    runner = RUNNERS.build(cfg) if 'runner_type' in cfg else \
        Runner.from_cfg(cfg)
    clock = IterClock(case['batch_size'], case['warmup'], case['device'],
                      total_iters(case))
    epochs = []
    runner.register_hook(make_clock_hook(clock, case['mode'], epochs))
    if train:
        runner.train()
    else:
        runner.test()
    result = clock.result()
    result['epoch_s'] = [e[1] - e[0] for e in epochs if len(e) == 2]
    return result


def stock_config(case: dict):
    """MMPretrain's ImageNet ResNet-50 recipe on the benchmark data."""
    from mmengine.hub import get_config

    cfg = get_config(STOCK_CONFIG)
    cfg.work_dir = case['work_dir']
    cfg.model.backbone.frozen_stages = 2
    cfg.model.backbone.init_cfg = dict(
        type='Pretrained', checkpoint=case['checkpoint'], prefix='backbone')
    cfg.model.head.num_classes = 5
    cfg.model.head.topk = (1, )
    cfg.data_preprocessor.num_classes = 5
    for loader, split in (('train_dataloader', 'train'),
                          ('test_dataloader', 'val')):
        cfg[loader].dataset = dict(
            type='CustomDataset',
            data_root=case['data_root'],
            data_prefix=split,
            indices=case['num_images'],
            pipeline=cfg[loader].dataset.pipeline)
        cfg[loader].batch_size = case['batch_size']
    cfg.test_evaluator = dict(type='Accuracy', topk=(1, ))
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.train_cfg.max_epochs = case.get('epochs', 1)
    cfg.default_hooks.checkpoint = None
    if case['mode'] == 'test':
        cfg.load_from = case['checkpoint']
    return cfg


def _load_tool(name: str):
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        f'flower_tools_{name}', osp.join(REPO_ROOT, 'tools', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def read_jpeg(path: str):
    """The plain loop's decoder: libjpeg-turbo through torchvision."""
    from torchvision.io import decode_jpeg, read_file
    return decode_jpeg(read_file(path))


def plain_transform(train: bool):
    """The project's augmentations, as torchvision v2 transforms."""
    from torchvision.transforms import v2
    if train:
        return v2.Compose([
            v2.RandomResizedCrop(224, antialias=True),
            v2.RandomHorizontalFlip(),
            v2.RandomVerticalFlip(),
            v2.ColorJitter(0.4, 0.4, 0.4, 0.1),
        ])
    return v2.Compose([v2.Resize(256, antialias=True), v2.CenterCrop(224)])


def run_pipeline_case(case: dict) -> dict:
    """CPU time per image of each data pipeline, on one core."""
    import cv2
    import torch
    from mmengine.config import Config
    from mmengine.hub import get_config
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import TRANSFORMS

    import flower_mm  # noqa: F401
    cv2.setNumThreads(1)  # as in a data worker
    torch.set_num_threads(1)
    init_default_scope('mmpretrain')
    paths = sorted(
        osp.join(dp, f) for dp, _, fs in os.walk(
            osp.join(case['data_root'], 'train')) for f in fs)[:case['count']]
    project, stock = Config.fromfile(PROJECT_CONFIG), get_config(STOCK_CONFIG)

    def time_mm(pipeline_cfg, per_step=False):
        steps = [TRANSFORMS.build(t) for t in pipeline_cfg]
        spent = [0.] * len(steps)
        for n, path in enumerate(paths[:5] + paths):  # 5 to warm up
            results = dict(img_path=path, gt_label=0)
            for i, step in enumerate(steps):
                t0 = time.process_time()
                results = step(results)
                if n >= 5:
                    spent[i] += time.process_time() - t0
        ms = [1e3 * t / len(paths) for t in spent]
        if per_step:
            return {type(t).__name__: m for t, m in zip(steps, ms)}
        return sum(ms)

    def time_plain(train):
        transform = plain_transform(train)
        for path in paths[:5]:  # warm up
            transform(read_jpeg(path))
        t0 = time.process_time()
        for path in paths:
            transform(read_jpeg(path))
        return 1e3 * (time.process_time() - t0) / len(paths)

    return dict(
        ms_per_image={
            'train, stock': time_mm(stock.train_pipeline),
            'train, project': time_mm(project.train_pipeline),
            'train, plain (torchvision)': time_plain(True),
            'test, stock': time_mm(stock.test_pipeline),
            'test, project': time_mm(project.test_pipeline),
            'test, plain (torchvision)': time_plain(False),
        },
        project_train_steps=time_mm(project.train_pipeline, per_step=True),
        project_train_steps_pillow_jitter=time_mm(
            [dict(t, type='ColorJitter') if t['type'] == 'FastColorJitter'
             else t for t in project.train_pipeline], per_step=True),
        images=len(paths))


def run_plain_case(case: dict) -> dict:
    """(c): the same model in a plain PyTorch loop and DataLoader."""
    import torch
    import torch.nn.functional as F
    from mmengine.config import Config
    from torchvision.datasets import ImageFolder

    from flower_mm.engine import channels_last_enabled, loop_fp16
    from flower_mm.utils import resolve_amp_dtype, resolve_inference_dtype

    device = case['device']
    train = case['mode'] == 'train'
    # Precision, layout and loader settings as the project's config says,
    # with the case's options merged as tools/train.py merges them.
    tool, opts = _load_tool('train'), case.get('extra_options', [])
    args = tool.get_args_parser().parse_args(
        [PROJECT_CONFIG] + (['--cfg-options', *opts] if opts else []))
    cfg = tool.merge_args(Config.fromfile(PROJECT_CONFIG), args)
    if train:
        dtype = resolve_amp_dtype(cfg.optim_wrapper.dtype, device)
    else:
        dtype = resolve_inference_dtype(loop_fp16(cfg.test_cfg), device)
    channels_last = channels_last_enabled(cfg)
    loader_cfg = cfg.train_dataloader if train else cfg.test_dataloader
    torch.backends.cudnn.benchmark = cfg.env_cfg.get('cudnn_benchmark',
                                                     False)

    if case.get('malloc_tuning'):
        # The allocator settings the project's MallocTuningHook applies:
        # separates the framework's cost from the allocator's gain.
        from flower_mm.engine.hooks import MallocTuningHook
        MallocTuningHook().before_run(None)

    model = build_project_model()
    model.load_state_dict(
        torch.load(case['checkpoint'], map_location='cpu')['state_dict'])
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    model.train(train)
    mean = torch.tensor([123.675, 116.28, 103.53], device=device)
    std = torch.tensor([58.395, 57.12, 57.375], device=device)
    mean, std = mean.view(1, 3, 1, 1), std.view(1, 3, 1, 1)

    split = 'train' if train else 'val'
    dataset = ImageFolder(
        osp.join(case['data_root'], split),
        loader=read_jpeg,
        transform=plain_transform(train))
    dataset = torch.utils.data.Subset(dataset, range(case['num_images']))
    from flower_mm.utils.machine import resolve_num_workers
    workers = resolve_num_workers(loader_cfg.num_workers)
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=case['batch_size'],
        shuffle=train,
        num_workers=workers,
        persistent_workers=bool(loader_cfg.get('persistent_workers')) and
        workers > 0,
        prefetch_factor=loader_cfg.get('prefetch_factor') if workers else None,
        pin_memory=bool(loader_cfg.get('pin_memory', False)))
    synthetic = case.get('synthetic', False)
    if synthetic:
        fixed = (torch.randint(0, 256, (case['batch_size'], 3, 224, 224),
                               dtype=torch.uint8, device=device),
                 torch.randint(0, 5, (case['batch_size'], ), device=device))

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(
        params, lr=0.01, momentum=0.9, weight_decay=1e-4)
    scaler = torch.amp.GradScaler(
        device, enabled=device == 'cuda' and dtype == torch.float16)
    clock = IterClock(case['batch_size'], case['warmup'], device,
                      total_iters(case))
    epochs, correct = [], 0
    for _ in range(case.get('epochs', 1)):
        epochs.append([time.perf_counter()])
        batches = iter(range(len(loader))) if synthetic else iter(loader)
        for batch in batches:
            clock.start()
            images, labels = fixed if synthetic else batch
            images = images.to(device, non_blocking=True)
            labels = labels.to(device, non_blocking=True)
            images = (images.float() - mean) / std
            if channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            with torch.autocast(
                    device,
                    dtype=dtype or (torch.float16 if device == 'cuda' else
                                    torch.bfloat16),
                    enabled=dtype is not None):
                if train:
                    loss = F.cross_entropy(
                        model(images, mode='tensor'), labels)
                else:
                    with torch.inference_mode():
                        scores = model(images, mode='tensor').softmax(1)
            if train:
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                loss.item()  # as any loop that logs its loss
            else:
                correct += int((scores.argmax(1) == labels).sum())
            clock.end()
        epochs[-1].append(time.perf_counter())
    result = clock.result()
    result['epoch_s'] = [e[1] - e[0] for e in epochs]
    result['autocast'] = str(dtype or torch.float32)[6:]
    result['channels_last'] = channels_last
    return result


def run_case(case: dict) -> dict:
    if case['recipe'] == 'pipelines':
        return run_pipeline_case(case)
    if case['recipe'] == 'plain':
        return run_plain_case(case)
    return run_runner_case(case)


# ----------------------------------------------------------- orchestration


def plan_cases(args, device: str) -> list:
    """The cases to measure, in order; each runs in its own process.

    Cases with ``rounds`` > 1 are measured that many times, interleaved with
    the others, and keep their best round: other processes on a small
    machine slow single rounds down by 20 % and more.
    """
    quick, gpu = args.quick, device == 'cuda'
    if gpu:  # (warm-up, measured) iterations for training and inference
        iters = dict(train=(6, 24), test=(6, 24)) if quick else dict(
            train=(10, 100), test=(10, 100))
        rounds = 1
    else:
        iters = dict(train=(3, 8), test=(3, 16)) if quick else dict(
            train=(4, 16), test=(4, 32))
        rounds = 3
    rounds = args.rounds or rounds
    bs = args.batch_size

    def case(name, mode, recipe, **kwargs):
        warmup, measured = iters[mode]
        measured = args.iters or measured
        return dict(dict(
            name=name, mode=mode, recipe=recipe, device=device,
            batch_size=bs, warmup=warmup, rounds=rounds,
            num_images=(warmup + measured) * bs), **kwargs)

    cases = [
        case(f'{mode}/{recipe}', mode, recipe)
        for mode in ('train', 'test')
        for recipe in ('stock', 'project', 'plain')
    ]
    if gpu or not quick:
        fp32 = ['optim_wrapper.dtype=float32', 'test_cfg.fp16=False']
        nchw = ['default_hooks.channels_last.enabled=False']
        train_variants = [('fp32', fp32), ('NCHW', nchw)]
        test_variants = [('fp32', fp32)]
        if not quick:
            train_variants.append(('fp32 NCHW', fp32 + nchw))
            test_variants.append(('NCHW', nchw))
        if gpu:
            train_variants += [
                ('bf16', ['optim_wrapper.dtype=bfloat16']),
                ('pin_memory', ['train_dataloader.pin_memory=True']),
                ('8 workers', ['train_dataloader.num_workers=8']),
            ]
        else:
            no_malloc = ['default_hooks.malloc_tuning.enabled=False']
            train_variants += [
                ('no malloc tuning', no_malloc),
                ('4 workers', ['train_dataloader.num_workers=4']),
                ('8 workers', ['train_dataloader.num_workers=8']),
            ]
            test_variants.append(('no malloc tuning', no_malloc))
        for mode, variants in (('train', train_variants),
                               ('test', test_variants)):
            cases += [
                case(f'{mode}/project {label}', mode, 'project',
                     extra_options=opts) for label, opts in variants
            ]
            # The model alone on one batch kept in memory: the ceiling
            # the data loader must not lower.
            cases.append(case(f'{mode}/model only', mode, 'plain',
                              synthetic=True, malloc_tuning=not gpu))
            if not gpu:
                # (c) with the project's allocator settings: what the
                # framework itself costs, apart from MallocTuningHook.
                cases.append(case(f'{mode}/plain + malloc tuning', mode,
                                  'plain', malloc_tuning=True))
    if not quick:
        # Time per epoch (the second of two: persistent workers started).
        n = (iters['train'][0] + iters['train'][1]) * bs
        for batch, images in ((bs, n // 2), (bs, n), (bs // 2, n),
                              (bs * 2, n)):
            cases.append(dict(
                case(f'epoch/bs{batch} n{images}', 'train', 'project'),
                batch_size=batch, num_images=images, warmup=1, epochs=2,
                rounds=1))
    return cases


def launch(case: dict, log_dir: str) -> dict:
    """Run one case in a fresh Python process; return its result."""
    log = osp.join(log_dir, osp.basename(case['work_dir']) + '_' +
                   case['name'].replace('/', '_').replace(' ', '_') + '.log')
    with open(log, 'w') as f:
        proc = subprocess.run(
            [sys.executable, __file__, '--run-case', json.dumps(case)],
            stdout=f, stderr=subprocess.STDOUT, cwd=case['work_dir'])
    with open(log) as f:
        lines = f.read().splitlines()
    results = [ln for ln in lines if ln.startswith('RESULT ')]
    if proc.returncode != 0 or not results:
        tail = '\n'.join(lines[-30:])
        raise RuntimeError(
            f'case {case["name"]} failed (exit {proc.returncode}); log: '
            f'{log}\n{tail}')
    return json.loads(results[-1][len('RESULT '):])


def machine_description(device: str) -> str:
    import torch
    from flower_mm.utils.machine import cpu_model
    desc = f'{cpu_model()}, {os.cpu_count()} logical cores, torch {torch.__version__}'
    if device == 'cuda':
        desc = f'{torch.cuda.get_device_name()}; {desc}'
    else:
        from flower_mm.utils import cpu_has_native_bf16
        desc += f', native bf16: {"yes" if cpu_has_native_bf16() else "no"}'
    return desc


def save_summary(args, device: str, results: dict, pipelines: dict,
                 started: float, partial: bool) -> dict:
    """Write throughput.json (after every case: a cut-off run keeps them)."""
    os.makedirs(args.out_dir, exist_ok=True)
    summary = dict(
        machine=machine_description(device),
        device=device,
        date=datetime.now().isoformat(timespec='seconds'),
        batch_size=args.batch_size,
        quick=args.quick,
        partial=partial,
        wall_s=time.perf_counter() - started,
        ratios=ratios(results),
        results=results,
        pipelines=pipelines)
    with open(osp.join(args.out_dir, 'throughput.json'), 'w') as f:
        json.dump(summary, f, indent=2)
    return summary


def ratios(results: dict) -> dict:
    """project/stock and project/plain, for training and inference.

    With several rounds, the median of each round's ratio: cases of one
    round ran minutes apart, under the same load from other processes.
    """
    out = {}
    for mode in ('train', 'test'):
        for other in ('stock', 'plain', 'plain + malloc tuning'):
            a = results.get(f'{mode}/project')
            b = results.get(f'{mode}/{other}')
            if a and b:
                out[f'{mode}/{other}'] = statistics.median(
                    x / y for x, y in zip(a['rounds_images_per_s'],
                                          b['rounds_images_per_s']))
    return out


def print_pipelines(pipelines: dict) -> None:
    print(f'\ndata pipelines, CPU ms per {PHOTO_SIZE[0]}x{PHOTO_SIZE[1]} '
          'JPEG on one core:')
    for name, ms in pipelines['ms_per_image'].items():
        print(f'  {name:<28}{ms:7.2f}')
    steps = ', '.join(f'{k} {v:.2f}'
                      for k, v in pipelines['project_train_steps'].items())
    print(f'  project train steps: {steps}')
    pillow = pipelines['project_train_steps_pillow_jitter']['ColorJitter']
    print(f'  (MMPretrain\'s ColorJitter, Pillow backend: {pillow:.2f})')


def print_table(results: dict, batch_size: int) -> None:
    header = (f'{"case":<28}{"img/s":>9}{"rounds":>18}{"ms/iter":>9}'
              f'{"data ms":>9}{"peak RSS MB":>13}{"PSS MB":>9}')
    if any('cuda_peak_mb' in r for r in results.values()):
        header += f'{"GPU MB":>9}'
    print(header)
    for name, r in results.items():
        if name.startswith('epoch/'):
            continue
        rounds = ' '.join(f'{v:.1f}' for v in r['rounds_images_per_s'])
        line = (f'{name:<28}{r["images_per_s"]:>9.2f}{rounds:>18}'
                f'{r["iter_ms"]:>9.1f}'
                f'{r["data_ms"]:>9.1f}{r["peak_rss_mb"]:>13.0f}'
                f'{r["total_pss_mb"]:>9.0f}')
        if 'cuda_peak_mb' in r:
            line += f'{r["cuda_peak_mb"]:>9.0f}'
        print(line)
    epochs = {k: v for k, v in results.items() if k.startswith('epoch/')}
    if epochs:
        print('\ntime per epoch (project training, 2nd epoch):')
        for name, r in epochs.items():
            print(f'  {name[6:]:<16} {r["epoch_s"][-1]:7.2f} s')


def plot(results: dict, path: str, title: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    names = [n for n in results if not n.startswith('epoch/')]
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(names) + 1.5))
    values = [results[n]['images_per_s'] for n in names]
    colours = ['tab:blue' if '/project' in n else 'tab:gray' for n in names]
    ax.barh(names[::-1], values[::-1], color=colours[::-1])
    for y, v in enumerate(values[::-1]):
        ax.text(v, y, f' {v:.1f}', va='center', fontsize=8)
    ax.set_xlabel('images/s')
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--quick', action='store_true',
                        help='the six main cases only, fewer iterations')
    parser.add_argument('--device', choices=['auto', 'cpu', 'cuda'],
                        default='auto')
    parser.add_argument('--batch-size', type=int,
                        help='default: 16 on a CPU, 32 on a GPU')
    parser.add_argument('--out-dir', default='work_dirs/benchmarks',
                        help='where throughput.json/png go')
    parser.add_argument('--keep-data', action='store_true',
                        help='keep the generated JPEGs and logs')
    parser.add_argument('--log-dir',
                        help='keep each case\'s log here (default: with '
                        'the data, removed at the end)')
    parser.add_argument('--rounds', type=int,
                        help='measure each main case this many times and '
                        'keep the best (default: 3 on a CPU, 1 on a GPU)')
    parser.add_argument('--iters', type=int, help=argparse.SUPPRESS)
    parser.add_argument('--run-case', help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.run_case:
        case = json.loads(args.run_case)
        if case['device'] == 'cpu':
            os.environ['CUDA_VISIBLE_DEVICES'] = ''
        print('RESULT ' + json.dumps(run_case(case)), flush=True)
        return

    import torch
    device = args.device
    if device == 'auto':
        device = 'cuda' if torch.cuda.is_available() else 'cpu'
    if device == 'cuda' and not torch.cuda.is_available():
        sys.exit('error: --device cuda, but torch sees no CUDA GPU.')
    args.batch_size = args.batch_size or (32 if device == 'cuda' else 16)
    cases = plan_cases(args, device)

    tmp = tempfile.mkdtemp(prefix='flower_bench_')
    log_dir = args.log_dir or tmp
    os.makedirs(log_dir, exist_ok=True)
    started = time.perf_counter()
    try:
        data_root = osp.join(tmp, 'data')
        most = max(c['num_images'] for c in cases)
        print(f'Writing {most} train and {most} val JPEGs of '
              f'{PHOTO_SIZE[0]}x{PHOTO_SIZE[1]} to {data_root} ...',
              flush=True)
        write_photos(data_root, most, most)
        checkpoint = osp.join(tmp, 'resnet50_flowers_init.pth')
        write_checkpoint(checkpoint)
        print('Timing the data pipelines on one core ...', flush=True)
        pipelines = launch(
            dict(name='pipelines', recipe='pipelines', device=device,
                 data_root=data_root, count=UNIQUE_PHOTOS,
                 work_dir=tmp), log_dir)
        results, runs = {}, []
        for round_ in range(max(c['rounds'] for c in cases)):
            runs += [c for c in cases if c['rounds'] > round_]
        for i, case in enumerate(runs, 1):
            case = dict(case, data_root=data_root, checkpoint=checkpoint,
                        work_dir=osp.join(tmp, f'run{i}'))
            os.makedirs(case['work_dir'])
            t0 = time.perf_counter()
            r = launch(case, log_dir)
            best = results.get(case['name'])
            r['rounds_images_per_s'] = (
                best['rounds_images_per_s'] if best else []) + [
                    r['images_per_s']]
            if best is None or r['images_per_s'] > best['images_per_s']:
                results[case['name']] = r
            else:
                best['rounds_images_per_s'] = r['rounds_images_per_s']
            save_summary(args, device, results, pipelines, started,
                         partial=True)
            print(f'[{i}/{len(runs)}] {case["name"]:<28} '
                  f'{r["images_per_s"]:8.2f} img/s  (data '
                  f'{r["data_ms"]:.0f} of {r["iter_ms"]:.0f} ms/iter; '
                  f'{time.perf_counter() - t0:.0f} s)', flush=True)
    finally:
        if args.keep_data:
            print(f'data and logs kept in {tmp}')
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    summary = save_summary(args, device, results, pipelines, started,
                           partial=False)
    machine = summary['machine']
    plot(results, osp.join(args.out_dir, 'throughput.png'),
         f'{machine}\nbatch {args.batch_size}, {summary["date"]}')

    print(f'\n{machine}; batch {args.batch_size}; '
          f'{summary["wall_s"]:.0f} s; results in {args.out_dir}')
    print_table(results, args.batch_size)
    print_pipelines(pipelines)
    r = summary['ratios']
    if 'train/plain + malloc tuning' in r:
        print('project / plain loop with the same allocator settings: '
              f'train {r["train/plain + malloc tuning"]:.2f}, infer '
              f'{r.get("test/plain + malloc tuning", float("nan")):.2f}')
    print(f'train: project/stock {r["train/stock"]:.2f}, '
          f'project/plain {r["train/plain"]:.2f}; '
          f'infer: project/stock {r["test/stock"]:.2f}, '
          f'project/plain {r["test/plain"]:.2f}')


if __name__ == '__main__':
    main()
