"""Bad configs and arguments stop with one clear line before training."""
import shutil

import pytest
from conftest import (REPO_ROOT, assert_user_error, checkpoints_under,
                      config_path, make_flower_dataset, run_tool,
                      tiny_cfg_options)
from mmengine.config import Config

from flower_mm.engine import PretrainedWeightsError, check_pretrained_weights
from flower_mm.utils import (ConfigError, check_cfg_options,
                             check_checkpoint_exists)

TRAIN = REPO_ROOT / 'tools' / 'train.py'
TEST = REPO_ROOT / 'tools' / 'test.py'


@pytest.fixture(scope='module')
def flowers_cfg():
    return Config.fromfile(config_path('resnet50_flowers.py'))


@pytest.mark.parametrize('key, message', [
    ('load_form', 'unknown key "load_form" in the config (MMEngine would '
     'add it to the config and never read it); did you mean "load_from"?'),
    ('train_dataloader.batch_sise', 'unknown key "batch_sise" in '
     '"train_dataloader" (DataLoader takes no such argument); did you mean '
     '"batch_size"?'),
    ('model.head.num_clases', 'unknown key "num_clases" in "model.head" '
     '(LinearClsHead takes no such argument); did you mean "num_classes"?'),
    # FlowerDataset takes **kwargs: its bases' parameters count.
    ('val_dataloader.dataset.data_rot', 'did you mean "data_root"?'),
    ('train_cfg.max_epoch', 'unknown key "max_epoch" in "train_cfg" '
     '(EpochBasedTrainLoop takes no such argument); did you mean '
     '"max_epochs"?'),
    ('model.backbone.init_cfg.prefx', '(Pretrained takes no such argument); '
     'did you mean "prefix"?'),
    ('optim_wrapper.optimizer.lr_', 'did you mean "lr"?'),
    ('train_dataloader.dataset.pipeline.6.scale',
     '"train_dataloader.dataset.pipeline" is a list of 6 items; address one '
     'with train_dataloader.dataset.pipeline.0 to '
     'train_dataloader.dataset.pipeline.5.'),
    ('model.head.num_classes.x', '"model.head.num_classes" is 5, not a dict'),
], ids=lambda value: '' if ' ' in value else value)
def test_unknown_cfg_option_names_key_and_closest(flowers_cfg, key, message):
    with pytest.raises(ConfigError) as err:
        check_cfg_options(flowers_cfg, {key: '1'})
    assert str(err.value).startswith(f'--cfg-options {key}: ')
    assert message in str(err.value)


@pytest.mark.parametrize('key', [
    # absent from the config, but read by MMEngine's Runner
    'work_dir', 'resume', 'load_from', 'model_wrapper_cfg',
    'find_unused_parameters',
    # new arguments that the built class takes
    'train_dataloader.persistent_workers', 'train_dataloader.drop_last',
    'optim_wrapper.clip_grad', 'optim_wrapper.accumulative_counts',
    'optim_wrapper.paramwise_cfg', 'optim_wrapper.optimizer.nesterov',
    'train_cfg.val_begin', 'val_evaluator.thrs',
    'model.backbone.drop_path_rate', 'val_dataloader.dataset.lazy_init',
    # dicts whose consumer takes anything
    'env_cfg.cudnn_benchmark', 'default_hooks.checkpoint.out_dir',
    # keys the config has
    'model.head.num_classes', 'train_dataloader.dataset.pipeline.1.scale',
])
def test_valid_cfg_options_pass(flowers_cfg, key):
    check_cfg_options(flowers_cfg, {key: '1'})


def test_keys_checked_against_the_type_options_set(flowers_cfg):
    # The flowers default, DeviceAmpOptimWrapper, takes a loss scale...
    check_cfg_options(flowers_cfg, {'optim_wrapper.loss_scale': 'dynamic'})
    # ...plain OptimWrapper, set by the same options, does not.
    plain = {'optim_wrapper.loss_scale': 'dynamic',
             'optim_wrapper.type': 'OptimWrapper'}
    with pytest.raises(ConfigError, match='"optim_wrapper" '
                       r'\(OptimWrapper takes no such argument\)'):
        check_cfg_options(flowers_cfg, plain)
    with pytest.raises(ConfigError, match='did you mean "type"'):
        check_cfg_options(flowers_cfg, {'optim_wrapper.typ': 'Amp'})


def test_tiny_options_pass(flowers_cfg, tmp_path):
    options = dict(
        option.split('=', 1)
        for option in tiny_cfg_options(tmp_path, tmp_path / 'x.pth'))
    check_cfg_options(flowers_cfg, options)


def test_missing_local_checkpoints_are_named(tmp_path):
    existing = tmp_path / 'epoch_1.pth'
    existing.write_bytes(b'')
    check_checkpoint_exists(str(existing), 'load_from')
    check_checkpoint_exists('https://example.com/r50.pth', 'load_from')
    check_checkpoint_exists(None, 'load_from')
    with pytest.raises(ConfigError, match='load_from: checkpoint '
                       f'"{tmp_path}/epoch_2.pth" does not exist'):
        check_checkpoint_exists(str(tmp_path / 'epoch_2.pth'), 'load_from')


def test_missing_pretrained_checkpoint_is_named(tmp_path):
    from mmpretrain.models import ResNet
    missing = tmp_path / 'r18.pth'
    with pytest.raises(PretrainedWeightsError) as err:
        check_pretrained_weights(
            ResNet(depth=18), 'backbone',
            dict(type='Pretrained', checkpoint=str(missing)))
    assert f'"{missing}" is not a file' in str(err.value)
    assert 'model.backbone.init_cfg.checkpoint=' in str(err.value)


def train_with(tmp_path, data_root, pretrained, options=(), args=()):
    """tools/train.py on the tiny data, with more --cfg-options/args."""
    return run_tool([
        TRAIN, config_path('resnet50_flowers.py'), *args, '--cfg-options',
        *tiny_cfg_options(data_root, pretrained, epochs=1), *options
    ],
                    cwd=tmp_path,
                    check=False)


def test_train_refuses_top_level_typo(tmp_path, flower_data_root,
                                      pretrained_ckpt):
    proc = train_with(tmp_path, flower_data_root, pretrained_ckpt,
                      [f'load_form={pretrained_ckpt}'])
    assert_user_error(proc, '--cfg-options load_form: unknown key',
                      'did you mean "load_from"?')
    # Before the Runner: no work dir at all.
    assert not (tmp_path / 'work_dirs').exists()


def test_train_refuses_num_classes_mismatch(tmp_path, flower_data_root,
                                            pretrained_ckpt):
    proc = train_with(tmp_path, flower_data_root, pretrained_ckpt,
                      ['model.head.num_classes=3'])
    assert_user_error(
        proc, 'model.head.num_classes=3 does not match the 5 classes of '
        'train_dataloader.dataset (FlowerDataset: daisy, dandelion, rose, '
        'sunflower, tulip)', 'Set model.head.num_classes=5')
    assert checkpoints_under(tmp_path) == []


def test_train_refuses_missing_resume_checkpoint(tmp_path, flower_data_root,
                                                 pretrained_ckpt):
    missing = tmp_path / 'no_such.pth'
    proc = train_with(tmp_path, flower_data_root, pretrained_ckpt,
                      args=['--resume', str(missing)])
    assert_user_error(proc, f'load_from (resume=True, e.g. from --resume): '
                      f'checkpoint "{missing}" does not exist')
    assert checkpoints_under(tmp_path) == []


def test_test_refuses_missing_checkpoint(tmp_path):
    proc = run_tool([TEST, config_path('resnet50_flowers.py'), 'nope.pth'],
                    cwd=tmp_path,
                    check=False)
    assert_user_error(proc, 'checkpoint "nope.pth" does not exist')


def test_train_refuses_batch_larger_than_train_set(tmp_path,
                                                   flower_data_root,
                                                   pretrained_ckpt):
    proc = train_with(
        tmp_path, flower_data_root, pretrained_ckpt,
        ['train_dataloader.batch_size=21', 'train_dataloader.drop_last=True'])
    # 5 classes x 4 training images
    assert_user_error(
        proc, 'train_dataloader.batch_size=21 is larger than the training '
        'set (20 images) and drop_last=True',
        'Set train_dataloader.batch_size to at most 20')
    assert checkpoints_under(tmp_path) == []


def test_train_refuses_data_root_with_some_classes(tmp_path,
                                                   pretrained_ckpt):
    data_root = make_flower_dataset(tmp_path / 'flowers', 2, 1)
    for name in ('rose', 'tulip'):  # folders stay, images go
        shutil.rmtree(data_root / 'train' / name)
        (data_root / 'train' / name).mkdir()
    proc = train_with(tmp_path, data_root, pretrained_ckpt)
    assert_user_error(
        proc, f'Split folder "{data_root / "train"}" has no images',
        "for the classes ['rose', 'tulip']")
    assert checkpoints_under(tmp_path) == []


@pytest.mark.parametrize('tool', ['infer.py', 'export.py'])
def test_prediction_and_export_tools_refuse_cfg_option_typos(tmp_path, tool):
    checkpoint = tmp_path / 'model.pth'
    checkpoint.write_bytes(b'never read: the options are checked first')
    tool_args = [str(tmp_path)] if tool == 'infer.py' else ['--format', 'onnx']
    proc = run_tool([
        REPO_ROOT / 'tools' / tool,
        config_path('resnet50_flowers.py'), checkpoint, *tool_args,
        '--cfg-options', 'test_dataloader.batch_sizee=3'
    ],
                    cwd=tmp_path,
                    check=False)
    assert_user_error(
        proc, '--cfg-options test_dataloader.batch_sizee: unknown key',
        'did you mean "batch_size"?')
