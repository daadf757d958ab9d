"""The flower configs switch on the speed and crash-safety components."""
from conftest import config_path
from mmengine.config import Config

from flower_mm.utils import resolve_num_workers


def test_flower_config_enables_the_speed_switches():
    cfg = Config.fromfile(config_path('resnet50_flowers.py'))
    assert cfg.optim_wrapper.type == 'DeviceAmpOptimWrapper'
    assert cfg.optim_wrapper.dtype == 'auto'
    assert cfg.val_cfg.type == 'AmpValLoop' and cfg.val_cfg.fp16 == 'auto'
    assert cfg.test_cfg.type == 'AmpTestLoop' and cfg.test_cfg.fp16 == 'auto'
    assert cfg.default_hooks.channels_last.type == 'ChannelsLastHook'
    assert cfg.default_hooks.malloc_tuning.type == 'MallocTuningHook'
    assert cfg.env_cfg.mp_cfg.opencv_num_threads == 0
    assert any(t.type == 'FastColorJitter' for t in cfg.train_pipeline)
    for loader in (cfg.train_dataloader, cfg.val_dataloader):
        assert loader.persistent_workers
        # Resolved by FlowerRunner.build_dataloader on each machine.
        assert loader.num_workers == 'auto'
        assert 2 <= resolve_num_workers(loader.num_workers) <= 16
        assert loader.collate_fn.type == 'default_collate'
