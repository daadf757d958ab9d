"""What the loaded flower configs really build."""
import copy

import pytest
import torch
from conftest import config_path
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmpretrain.datasets.transforms import ColorJitter
from mmpretrain.registry import MODELS, TRANSFORMS

import flower_mm.registration  # noqa: F401


@pytest.fixture(scope='module')
def cfg():
    return Config.fromfile(config_path('resnet50_flowers.py'))


def without_scope(cfg_dict) -> dict:
    """A config dict without the `_scope_` keys MMEngine adds to bases."""
    return {k: v for k, v in cfg_dict.items() if k != '_scope_'}


def build_model(cfg, checkpoint):
    init_default_scope('mmpretrain')
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.backbone.init_cfg.checkpoint = str(checkpoint)
    model = MODELS.build(model_cfg)
    model.init_weights()
    return model


def test_backbone_is_imagenet_resnet50_with_stem_and_two_stages_frozen(
        cfg, pretrained_ckpt):
    assert cfg.model.backbone.type == 'ResNet'
    assert cfg.model.backbone.depth == 50
    assert cfg.model.backbone.init_cfg == dict(
        type='Pretrained',
        checkpoint='https://download.openmmlab.com/mmclassification/v0/'
        'resnet/resnet50_8xb32_in1k_20210831-ea4938fc.pth',
        prefix='backbone')

    model = build_model(cfg, pretrained_ckpt)
    model.train()
    backbone = model.backbone
    for frozen in (backbone.conv1, backbone.norm1, backbone.layer1,
                   backbone.layer2):
        assert not any(p.requires_grad for p in frozen.parameters())
        assert not any(m.training for m in frozen.modules()
                       if isinstance(m, torch.nn.BatchNorm2d))
    for trained in (backbone.layer3, backbone.layer4, model.head):
        assert all(p.requires_grad for p in trained.parameters())
    assert all(m.training for m in backbone.layer3.modules()
               if isinstance(m, torch.nn.BatchNorm2d))


def test_weights_come_from_the_given_checkpoint(cfg, pretrained_ckpt):
    model = build_model(cfg, pretrained_ckpt)
    state_dict = torch.load(pretrained_ckpt)['state_dict']
    for key in ('conv1.weight', 'layer2.3.conv2.weight', 'layer4.2.bn3.bias'):
        assert torch.equal(model.backbone.state_dict()[key],
                           state_dict[f'backbone.{key}'])


def test_head_predicts_five_classes_and_reports_top1(cfg, pretrained_ckpt):
    assert cfg.model.head.num_classes == 5
    assert tuple(cfg.model.head.topk) == (1, )
    assert cfg.data_preprocessor.num_classes == 5
    assert without_scope(cfg.val_evaluator) == dict(type='Accuracy', topk=(1, ))
    model = build_model(cfg, pretrained_ckpt)
    assert model.head.fc.out_features == 5
    assert model.head.fc.in_features == 2048


def test_train_pipeline_has_the_five_augmentations(cfg):
    pipeline = cfg.train_dataloader.dataset.pipeline
    assert [t.type for t in pipeline] == [
        'RobustLoadImageFromFile', 'RandomResizedCrop', 'RandomFlip',
        'RandomFlip', 'FastColorJitter', 'PackInputs'
    ]
    assert pipeline[1].scale == 224
    assert {(t.direction, t.prob) for t in pipeline[2:4]} == {
        ('horizontal', 0.5), ('vertical', 0.5)
    }
    jitter = pipeline[4]
    # MMPretrain's ColorJitter with the same draws, on lookup tables.
    assert issubclass(TRANSFORMS.get('FastColorJitter'), ColorJitter)
    assert all(jitter[k] > 0
               for k in ('brightness', 'contrast', 'saturation', 'hue'))
    # The fifth: ImageNet mean/std normalisation in the data preprocessor.
    assert cfg.data_preprocessor.mean == [123.675, 116.28, 103.53]
    assert cfg.data_preprocessor.std == [58.395, 57.12, 57.375]
    assert cfg.data_preprocessor.to_rgb is True

    test_pipeline = cfg.test_dataloader.dataset.pipeline
    assert [(t.type, t.get('scale', t.get('crop_size')))
            for t in test_pipeline] == [('RobustLoadImageFromFile', None),
                                        ('ResizeEdge', 256),
                                        ('CenterCrop', 224),
                                        ('PackInputs', None)]


def test_schedule_is_sgd_with_step_decay(cfg):
    assert without_scope(cfg.optim_wrapper.optimizer) == dict(
        type='SGD', lr=0.01, momentum=0.9, weight_decay=1e-4)
    assert cfg.param_scheduler.type == 'MultiStepLR'
    assert cfg.param_scheduler.gamma == 0.1
    assert cfg.train_cfg.max_epochs == 30
    assert cfg.train_dataloader.batch_size == 32
    assert cfg.auto_scale_lr.base_batch_size == 32


def test_runtime_logs_keeps_best_and_is_seeded(cfg):
    assert cfg.default_hooks.logger.interval == 10
    assert cfg.default_hooks.checkpoint.save_best == 'accuracy/top1'
    assert cfg.default_hooks.checkpoint.rule == 'greater'
    assert cfg.default_hooks.checkpoint.max_keep_ckpts >= 2
    assert isinstance(cfg.randomness.seed, int)
    assert cfg.custom_imports.imports == ['flower_mm.registration']
    assert cfg.train_dataloader.dataset.type == 'FlowerDataset'
    assert cfg.train_dataloader.dataset.data_root == 'data/flower_dataset'


def test_unfrozen_variant_differs_only_in_frozen_stages(cfg):
    variant = Config.fromfile(config_path('resnet50_flowers_unfrozen.py'))
    assert variant.model.backbone.frozen_stages == -1
    variant.model.backbone.frozen_stages = cfg.model.backbone.frozen_stages
    assert variant.to_dict() == cfg.to_dict()
