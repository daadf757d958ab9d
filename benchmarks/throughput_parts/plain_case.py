"""Case (c): the same model in a plain PyTorch loop and DataLoader."""
import os.path as osp
import time

from .clock import IterClock
from .pipeline_case import plain_transform, read_jpeg
from .photos import PROJECT_CONFIG, build_project_model
from .runner_case import total_iters


def run_plain_case(case: dict) -> dict:
    """(c): the same model in a plain PyTorch loop and DataLoader."""
    import torch
    import torch.nn.functional as F
    from mmengine.config import Config
    from torchvision.datasets import ImageFolder

    from flower_mm.cli import train as tool
    from flower_mm.engine import channels_last_enabled, loop_fp16
    from flower_mm.utils import resolve_amp_dtype, resolve_inference_dtype

    device = case['device']
    train = case['mode'] == 'train'
    # Precision, layout and loader settings as the project's config says,
    # with the case's options merged as tools/train.py merges them.
    opts = case.get('extra_options', [])
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
