"""ChannelsLastHook: model, inputs and checkpoints in channels-last."""
from types import SimpleNamespace

import torch

from flower_mm.engine import ChannelsLastHook


def build_classifier():
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    return MODELS.build(
        dict(
            type='ImageClassifier',
            backbone=dict(type='ResNet', depth=18),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(type='LinearClsHead', num_classes=5, in_channels=512),
            data_preprocessor=dict(
                type='ClsDataPreprocessor',
                mean=[123.675, 116.28, 103.53],
                std=[58.395, 57.12, 57.375],
                to_rgb=True)))


def test_channels_last_hook_converts_model_inputs_and_checkpoints():
    torch.manual_seed(0)
    model = build_classifier().eval()
    reference = build_classifier().eval()
    reference.load_state_dict(model.state_dict())
    runner = SimpleNamespace(model=model)
    hook = ChannelsLastHook()
    hook.before_run(runner)

    conv = model.backbone.conv1.weight
    assert conv.is_contiguous(memory_format=torch.channels_last)
    assert not conv.is_contiguous()
    batch = dict(inputs=torch.randint(0, 256, (2, 3, 32, 32),
                                      dtype=torch.uint8))
    inputs = model.data_preprocessor(batch, False)['inputs']
    assert inputs.is_contiguous(memory_format=torch.channels_last)
    assert not inputs.is_contiguous()
    with torch.no_grad():
        torch.testing.assert_close(
            model(inputs, mode='tensor'),
            reference(reference.data_preprocessor(batch, False)['inputs'],
                      mode='tensor'),
            rtol=1e-4,
            atol=1e-4)

    # checkpoints are saved NCHW-contiguous, loadable anywhere
    checkpoint = dict(state_dict=model.state_dict())
    hook.before_save_checkpoint(runner, checkpoint)
    assert all(v.is_contiguous() for v in checkpoint['state_dict'].values())
    fresh = build_classifier()
    fresh.load_state_dict(checkpoint['state_dict'])
    for key, value in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value), key

    hook.after_run(runner)  # inputs stay as the preprocessor makes them
    inputs = model.data_preprocessor(batch, False)['inputs']
    assert inputs.is_contiguous()


def test_channels_last_hook_can_be_switched_off():
    model = build_classifier()
    ChannelsLastHook(enabled=False).before_run(SimpleNamespace(model=model))
    assert model.backbone.conv1.weight.is_contiguous()
    batch = dict(inputs=torch.randint(0, 256, (1, 3, 16, 16),
                                      dtype=torch.uint8))
    assert model.data_preprocessor(batch, False)['inputs'].is_contiguous()
