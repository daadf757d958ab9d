import pytest
from conftest import make_pretrained_checkpoint
from mmpretrain.models import ResNet

from flower_mm.engine import PretrainedWeightsError, check_pretrained_weights


def init_cfg(path):
    return dict(type='Pretrained', checkpoint=str(path), prefix='backbone')


def test_fitting_checkpoint_passes(pretrained_ckpt):
    check_pretrained_weights(ResNet(depth=50), 'backbone',
                             init_cfg(pretrained_ckpt))


def test_missing_file_names_it_and_the_key(tmp_path):
    with pytest.raises(PretrainedWeightsError) as err:
        check_pretrained_weights(ResNet(depth=50), 'backbone',
                                 init_cfg(tmp_path / 'r50.pth'))
    msg = str(err.value)
    assert f'"{tmp_path / "r50.pth"}" is not a file' in msg
    assert '--cfg-options model.backbone.init_cfg.checkpoint=' in msg


def test_checkpoint_of_another_architecture_is_refused(tmp_path):
    resnet18 = make_pretrained_checkpoint(tmp_path / 'r18.pth', depth=18)
    with pytest.raises(PretrainedWeightsError) as err:
        check_pretrained_weights(ResNet(depth=50), 'backbone',
                                 init_cfg(resnet18))
    msg = str(err.value)
    assert 'does not fit `backbone`' in msg
    assert 'weights missing (e.g. backbone.layer1.0.conv3.weight)' in msg
    assert 'with other shapes' in msg


def test_wrong_prefix_is_refused(pretrained_ckpt):
    cfg = dict(init_cfg(pretrained_ckpt), prefix='encoder')
    with pytest.raises(PretrainedWeightsError,
                       match="under the prefix 'encoder.'"):
        check_pretrained_weights(ResNet(depth=50), 'backbone', cfg)
