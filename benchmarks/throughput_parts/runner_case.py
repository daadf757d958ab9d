"""Cases (a) and (b): MMEngine's Runner, on the stock or project recipe."""
from .clock import IterClock, make_clock_hook
from .photos import PROJECT_CONFIG, STOCK_CONFIG


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
    from mmengine.config import Config

    from flower_mm.cli import build_runner

    work_dir = case['work_dir']
    train = case['mode'] == 'train'
    if case['recipe'] == 'project':
        from flower_mm.cli import test as test_cli
        from flower_mm.cli import train as train_cli
        tool = train_cli if train else test_cli
        options = case_cfg_options(case)
        model = case['checkpoint']
        if case.get('onnx'):
            from .onnx_case import onnx_model_file
            model = onnx_model_file(case['export_dir'], case['onnx'])
            # The export replaces the config's model.
            options = [o for o in options if not o.startswith('model.')]
        argv = [PROJECT_CONFIG] + ([] if train else [model])
        argv += ['--work-dir', work_dir, '--cfg-options', *options]
        if train:
            argv.insert(1, '--no-validate')
        args = tool.get_args_parser().parse_args(argv)
        cfg = tool.merge_args(Config.fromfile(args.config), args)
    else:
        cfg = stock_config(case)
    # As the tools build it: FlowerRunner resolves num_workers='auto'.
    runner = build_runner(cfg)
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

