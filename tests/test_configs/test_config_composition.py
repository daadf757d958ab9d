"""resnet50_flowers.py is MMPretrain's ResNet-50 ImageNet recipe, part by
part, with the flower dataset, schedule and runtime on top."""
import os.path as osp

import mmpretrain
from conftest import config_path
from mmengine.config import Config

# mmpretrain::resnet/resnet50_8xb32_in1k.py
RECIPE = osp.join(
    osp.dirname(mmpretrain.__file__), '.mim', 'configs', 'resnet',
    'resnet50_8xb32_in1k.py')
# What the flower parts leave as the recipe has it.
FROM_RECIPE = [
    'default_scope', 'vis_backends', 'visualizer', 'log_level', 'load_from',
    'resume', 'model.type', 'model.neck', 'model.backbone.type',
    'model.backbone.depth', 'model.backbone.num_stages',
    'model.backbone.out_indices', 'model.backbone.style', 'model.head.type',
    'model.head.in_channels', 'model.head.loss', 'data_preprocessor.mean',
    'data_preprocessor.std', 'data_preprocessor.to_rgb',
    'train_dataloader.sampler', 'val_dataloader.sampler',
    'default_hooks.timer', 'default_hooks.param_scheduler',
    'default_hooks.sampler_seed', 'default_hooks.visualization',
    'env_cfg.dist_cfg', 'optim_wrapper.optimizer.type',
    'param_scheduler.type', 'randomness.deterministic'
]


def get(cfg, dotted):
    for key in dotted.split('.'):
        cfg = cfg[key]
    return unscoped(cfg)


def unscoped(value):
    """Without the ``_scope_`` that inheriting via ``mmpretrain::`` adds."""
    if isinstance(value, dict):
        return {k: unscoped(v) for k, v in value.items() if k != '_scope_'}
    if isinstance(value, (list, tuple)):
        return [unscoped(v) for v in value]
    return value


def test_flower_config_keeps_the_imagenet_recipe():
    recipe = Config.fromfile(RECIPE)
    flowers = Config.fromfile(config_path('resnet50_flowers.py'))
    for key in FROM_RECIPE:
        assert get(flowers, key) == get(recipe, key), key
    # Every key of the recipe is there; the flower parts only add or change.
    assert set(recipe.keys()) <= set(flowers.keys())
