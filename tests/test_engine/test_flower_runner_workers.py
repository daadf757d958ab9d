"""num_workers='auto' is resolved in code, not by probing in a config."""
from conftest import config_path
from mmengine.config import Config
from mmengine.registry import init_default_scope

from flower_mm.engine.runner.flower_runner import FlowerRunner
from flower_mm.utils import auto_num_workers


def test_configs_do_not_probe_the_machine():
    text = open(config_path('_base_/datasets/flowers.py')).read()
    assert 'import os' not in text and 'sched_getaffinity' not in text
    cfg = Config.fromfile(config_path('resnet50_flowers.py'))
    assert cfg.train_dataloader.num_workers == 'auto'
    assert 'num_data_workers' not in cfg and 'cpu_cores' not in cfg


def test_runner_resolves_auto_workers(flower_data_root, monkeypatch):
    monkeypatch.setenv('LOCAL_WORLD_SIZE', '1')
    init_default_scope('mmpretrain')
    cfg = Config.fromfile(config_path('resnet50_flowers.py'))
    loader_cfg = cfg.val_dataloader.to_dict()
    loader_cfg['dataset']['data_root'] = str(flower_data_root)
    loader = FlowerRunner.build_dataloader(loader_cfg)
    assert loader.num_workers == auto_num_workers()
    assert 2 <= loader.num_workers <= 16
    loader_cfg['num_workers'] = 3  # a number stays as it is
    assert FlowerRunner.build_dataloader(loader_cfg).num_workers == 3
