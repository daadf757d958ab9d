"""Cases (a) and (b): MMEngine's Runner, on the stock or project recipe."""
import importlib.util
import os.path as osp

from .clock import IterClock, make_clock_hook
from .photos import PROJECT_CONFIG, REPO_ROOT, STOCK_CONFIG


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
        tool = load_tool('train' if train else 'test')
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


def load_tool(name: str):
    spec = importlib.util.spec_from_file_location(
        f'flower_tools_{name}', osp.join(REPO_ROOT, 'tools', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
