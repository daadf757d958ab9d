"""Every config of the report's experiments builds, loads its pretrained
weights' layout, and differs from its parent only where its name says."""
import os.path as osp
import re

import mmpretrain
import pytest
import torch
import yaml
from conftest import (config_path, make_densenet_checkpoint,
                      make_pretrained_checkpoint)
from mmengine.config import Config
from mmpretrain.registry import DATASETS, MODELS

from flower_mm.engine import PretrainedWeightsError, check_pretrained_weights
from flower_mm.experiments import EXPERIMENTS, unique_cells

BACKBONE = {
    'model.backbone.' + k
    for k in ('type', 'arch', 'depth', 'num_stages', 'out_indices', 'style',
              'init_cfg.checkpoint')
}
BATCH = {
    'train_dataloader.batch_size', 'optim_wrapper.optimizer.lr',
    'auto_scale_lr.base_batch_size'
}
# config -> (the config it is a variant of, the keys its name says it
# changes)
VARIANTS = {
    'resnet18_flowers.py': ('resnet50_flowers.py', {
        'model.backbone.depth', 'model.backbone.init_cfg.checkpoint',
        'model.head.in_channels'
    }),
    'resnet18_flowers_bs64.py': ('resnet18_flowers.py', BATCH),
    'resnet18_flowers_bs128.py': ('resnet18_flowers.py', BATCH),
    'densenet121_flowers.py':
    ('resnet50_flowers.py', BACKBONE | {'model.head.in_channels'}),
    'resnet50_flowers_unfrozen.py':
    ('resnet50_flowers.py', {'model.backbone.frozen_stages'}),
}
# A variant inherits its parent, except where it takes another of
# MMPretrain's model bases under the same flower parts.
MODEL_BASES = {
    'densenet121_flowers.py':
    'mmpretrain::_base_/models/densenet/densenet121.py'
}
MIM = osp.join(osp.dirname(mmpretrain.__file__), '.mim', 'configs')


def flatten(value, prefix=''):
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, (list, tuple)) and any(
            isinstance(v, (dict, list)) for v in value):
        items = enumerate(value)
    else:
        return {prefix: value}
    flat = {}
    for key, item in items:
        flat.update(flatten(item, f'{prefix}.{key}' if prefix else str(key)))
    return flat


def load(name):
    return Config.fromfile(config_path(name))


def test_every_experiment_config_is_covered():
    swept = {cell.name + '.py' for cell in unique_cells(EXPERIMENTS.values())}
    assert swept == set(VARIANTS) | {'resnet50_flowers.py'}
    for cell in unique_cells(EXPERIMENTS.values()):
        assert osp.isfile(cell.config_path), cell.config_path


@pytest.mark.parametrize('name', sorted(VARIANTS))
def test_variant_differs_from_parent_only_where_named(name):
    parent_name, expected = VARIANTS[name]
    source = open(config_path(name)).read()
    if name in MODEL_BASES:
        assert f"'{MODEL_BASES[name]}'" in source
        assert "'_delete_'" not in source and '_delete_=' not in source
    else:
        assert source.count(f"_base_ = './{parent_name}'") == 1
    child, parent = load(name), load(parent_name)
    flat_child, flat_parent = flatten(child.to_dict()), flatten(
        parent.to_dict())
    differing = {
        k
        for k in flat_child.keys() | flat_parent.keys()
        if flat_child.get(k, KeyError) != flat_parent.get(k, KeyError)
    }
    assert differing == expected

    batch = re.search(r'_bs(\d+)', name)
    if batch:
        # Linear scaling rule: lr per image as in the parent, and
        # --auto-scale-lr refers to this config's own batch size.
        size = int(batch.group(1))
        assert child.train_dataloader.batch_size == size
        assert child.auto_scale_lr.base_batch_size == size
        assert child.optim_wrapper.optimizer.lr == pytest.approx(
            parent.optim_wrapper.optimizer.lr * size /
            parent.train_dataloader.batch_size)
    backbone = child.model.backbone
    if name.startswith('resnet18'):
        assert (backbone.type, backbone.depth) == ('ResNet', 18)
    if name.startswith('densenet121'):
        assert (backbone.type, backbone.arch) == ('DenseNet', '121')
    if 'unfrozen' in name:
        assert backbone.frozen_stages == -1
    else:
        assert backbone.frozen_stages == parent.model.backbone.frozen_stages


def model_zoo_weights():
    """Weights URL -> the MMPretrain config it belongs to."""
    weights = {}
    for family in ('resnet', 'densenet'):
        with open(osp.join(MIM, family, 'metafile.yml')) as f:
            for model in yaml.safe_load(f)['Models']:
                weights[model['Weights']] = model['Config']
    return weights


@pytest.mark.parametrize('name,zoo_config', [
    ('resnet18_flowers.py', 'configs/resnet/resnet18_8xb32_in1k.py'),
    ('resnet50_flowers.py', 'configs/resnet/resnet50_8xb32_in1k.py'),
    ('densenet121_flowers.py', 'configs/densenet/densenet121_4xb256_in1k.py'),
])
def test_pretrained_weights_are_mmpretrain_imagenet_ones(name, zoo_config):
    init_cfg = load(name).model.backbone.init_cfg
    assert init_cfg.type == 'Pretrained' and init_cfg.prefix == 'backbone'
    assert model_zoo_weights().get(init_cfg.checkpoint) == zoo_config


@pytest.fixture(scope='module')
def local_checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp('zoo')
    return {
        'resnet18_flowers':
        make_pretrained_checkpoint(root / 'r18.pth', depth=18),
        'densenet121_flowers': make_densenet_checkpoint(root / 'd121.pth'),
    }


@pytest.mark.parametrize('name', sorted(VARIANTS))
def test_variant_builds_model_and_dataset(name, flower_data_root,
                                          local_checkpoints):
    cfg = load(name)
    model = MODELS.build(cfg.model)
    model.eval()
    with torch.no_grad():
        logits = model(torch.zeros(1, 3, 64, 64), mode='tensor')
    # The head's in_channels fits the backbone's output.
    assert tuple(logits.shape) == (1, 5)

    config_name = osp.splitext(name)[0]
    if config_name in local_checkpoints:
        # The checkpoint layout MMPretrain's model zoo uses fits the
        # backbone under prefix 'backbone'; another architecture's does not.
        init_cfg = dict(
            cfg.model.backbone.init_cfg,
            checkpoint=str(local_checkpoints[config_name]))
        check_pretrained_weights(model.backbone, 'backbone', init_cfg)
        other = next(p for n, p in local_checkpoints.items()
                     if n != config_name)
        with pytest.raises(PretrainedWeightsError, match='does not fit'):
            check_pretrained_weights(model.backbone, 'backbone',
                                     dict(init_cfg, checkpoint=str(other)))

    for loader, count in (('train_dataloader', 20), ('val_dataloader', 15)):
        dataset_cfg = cfg[loader].dataset
        dataset_cfg.data_root = str(flower_data_root)
        dataset = DATASETS.build(dataset_cfg)
        assert len(dataset) == count
    sample = dataset[0]
    assert tuple(sample['inputs'].shape) == (3, 224, 224)
