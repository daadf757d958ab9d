"""The flower configs use the crash-safe hooks."""
from conftest import config_path
from mmengine.config import Config

CONFIG = config_path('resnet50_flowers.py')


def test_flower_configs_use_the_crash_safe_hooks():
    cfg = Config.fromfile(CONFIG)
    assert cfg.default_hooks.checkpoint.type == 'AtomicCheckpointHook'
    assert cfg.default_hooks.checkpoint.save_best == 'accuracy/top1'
    assert (cfg.default_hooks.resumable_randomness.type ==
            'ResumableRandomnessHook')
