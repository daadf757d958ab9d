"""compute_cam on a tiny ResNet trained here to find a red square.

The patch task makes the right answer known: the evidence for "red patch"
is the patch, wherever it is, so a correct CAM must move with it.
"""

import cv2
import numpy as np
import pytest
import torch
from conftest import keep_for_docs
from mmengine.config import Config

from flower_mm.apis import (CAM_METHODS, PyTorchPredictor, CamTargetError,
                            compute_cam, default_target_layers,
                            overlay_heatmap)
from flower_mm.visualization import plot_cam

SIZE, PATCH = 64, 14
PATCH_CLASSES = ('plain', 'red_patch')


def patch_image(rng, corner=None):
    """Grey noise; with ``corner`` (y, x), a red square there (BGR)."""
    img = rng.normal(128, 25, (SIZE, SIZE, 3)).clip(0, 255).astype(np.uint8)
    if corner is not None:
        y, x = corner
        img[y:y + PATCH, x:x + PATCH] = (30, 30, 230)
    return img


def patch_config(fp16=False):
    return Config(
        dict(
            model=dict(
                type='ImageClassifier',
                # ResNet-18 with 8 base channels and the last stage at
                # stride 8: an 8x8 map from a 64 px image.
                backbone=dict(
                    type='ResNet',
                    depth=18,
                    stem_channels=8,
                    base_channels=8,
                    strides=(1, 1, 2, 1)),
                neck=dict(type='GlobalAveragePooling'),
                head=dict(
                    type='LinearClsHead',
                    num_classes=2,
                    in_channels=64,
                    loss=dict(type='CrossEntropyLoss')),
                data_preprocessor=dict(
                    type='ClsDataPreprocessor',
                    num_classes=2,
                    mean=[127.5] * 3,
                    std=[64.0] * 3,
                    to_rgb=True)),
            test_dataloader=dict(
                dataset=dict(pipeline=[
                    dict(type='LoadImageFromFile'),
                    dict(type='PackInputs')
                ])),
            test_cfg=dict(type='AmpTestLoop', fp16=fp16)))


@pytest.fixture(scope='module', autouse=True)
def one_thread():
    """A model this small runs fastest on one thread (a loaded 2-core
    machine made two threads 20x slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope='module')
def patch_checkpoint(tmp_path_factory, one_thread):
    """Trained in seconds: 60 Adam steps of 16 images, half with a patch."""
    from mmpretrain.registry import MODELS
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = MODELS.build(patch_config().model)
    optim = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(60):
        labels = rng.integers(0, 2, 16)
        imgs = [
            patch_image(rng,
                        rng.integers(0, SIZE - PATCH, 2) if y else None)
            for y in labels
        ]
        batch = torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2)
        inputs = model.data_preprocessor({'inputs': batch}, True)['inputs']
        loss = torch.nn.functional.cross_entropy(
            model(inputs, mode='tensor'), torch.from_numpy(labels))
        optim.zero_grad()
        loss.backward()
        optim.step()
    path = tmp_path_factory.mktemp('patch') / 'patch_resnet.pth'
    torch.save({'state_dict': model.state_dict(),
                'meta': {'dataset_meta': {'classes': PATCH_CLASSES}}}, path)
    return path


@pytest.fixture(scope='module')
def classifier(patch_checkpoint):
    return PyTorchPredictor(patch_config(), str(patch_checkpoint), 'cpu')


def test_patch_model_has_learned(classifier):
    rng = np.random.default_rng(1)
    for corner in ((4, 4), (46, 46), (4, 46), None):
        [result] = compute_cam(classifier, [patch_image(rng, corner)])
        expected = 'plain' if corner is None else 'red_patch'
        assert result['pred_class'] == expected, (corner, result)
        assert result['pred_score'] > 0.9


def patch_mass(heatmap, corner, margin=4):
    """Share of the heat map's mass on the patch (grown by ``margin``)."""
    y, x = corner
    inside = heatmap[max(0, y - margin):y + PATCH + margin,
                     max(0, x - margin):x + PATCH + margin]
    return inside.sum() / heatmap.sum()


def test_heatmap_has_the_image_size_and_moves_with_the_patch(classifier):
    rng = np.random.default_rng(2)
    background = patch_image(rng)
    corners = [(4, 4), (46, 46), (4, 46), (46, 4)]
    images = []
    for y, x in corners:
        img = background.copy()
        img[y:y + PATCH, x:x + PATCH] = (30, 30, 230)
        images.append(img)
    results = compute_cam(classifier, images)
    for corner, result in zip(corners, results):
        heatmap = result['heatmap']
        assert heatmap.shape == (SIZE, SIZE) and heatmap.dtype == np.float32
        assert heatmap.min() >= 0 and heatmap.max() == pytest.approx(1)
        assert result['image'].shape == (SIZE, SIZE, 3)
        # the view is RGB: the red patch has its red channel high
        y, x = corner
        assert result['image'][y + 2, x + 2].tolist() == [230, 30, 30]
        peak = np.unravel_index(heatmap.argmax(), heatmap.shape)
        assert y - 6 <= peak[0] < y + PATCH + 6, (corner, peak)
        assert x - 6 <= peak[1] < x + PATCH + 6, (corner, peak)
        # The patch (+ margin) is 12 % of the image; it holds 2.5x that.
        assert patch_mass(heatmap, corner) > 0.3, corner
        # The same map computed for another patch position would miss.
        for other in corners:
            if other != corner:
                assert patch_mass(heatmap, other) < 0.15, (corner, other)


def test_every_method_runs_and_gradient_methods_find_the_patch(classifier):
    img = patch_image(np.random.default_rng(3), (40, 8))
    for method in CAM_METHODS:
        [result] = compute_cam(classifier, [img], method=method)
        heatmap = result['heatmap']
        assert heatmap.shape == (SIZE, SIZE), method
        assert 0 <= heatmap.min() and heatmap.max() <= 1, method
        assert heatmap.std() > 0.05, f'{method}: a flat map'
        if method != 'eigencam':  # class-agnostic, arbitrary sign
            assert patch_mass(heatmap, (40, 8)) > 0.25, method
            assert patch_mass(heatmap, (8, 40)) < 0.15, method
    for smooth in (dict(aug_smooth=True), dict(eigen_smooth=True)):
        [result] = compute_cam(classifier, [img], **smooth)
        assert result['heatmap'].shape == (SIZE, SIZE), smooth
        assert 0 <= result['heatmap'].min() <= result['heatmap'].max() <= 1


def test_target_category_by_name_or_index_and_fp32(patch_checkpoint, tmp_path):
    # bf16 test precision: the CAM still runs in fp32.
    clf = PyTorchPredictor(patch_config(fp16=True),
                               str(patch_checkpoint), 'cpu')
    assert clf.cast_dtype == torch.bfloat16
    path = tmp_path / 'patch.png'
    cv2.imwrite(str(path), patch_image(np.random.default_rng(4), (20, 20)))
    by_name, by_index, predicted = (
        compute_cam(clf, [str(path)], target_category=c)[0]
        for c in ('plain', '0', None))
    assert predicted['target_class'] == predicted['pred_class'] == 'red_patch'
    assert by_name['target_class'] == by_index['target_class'] == 'plain'
    assert by_name['pred_class'] == 'red_patch'
    np.testing.assert_array_equal(by_name['heatmap'], by_index['heatmap'])
    # evidence against "plain" is not evidence for it: a different map
    assert np.abs(by_name['heatmap'] - predicted['heatmap']).max() > 0.5
    with pytest.raises(CamTargetError, match='red_patch'):
        compute_cam(clf, [str(path)], target_category='tulip')
    with pytest.raises(CamTargetError, match='0-1'):
        compute_cam(clf, [str(path)], target_category=2)


def test_target_layers_default_and_errors(classifier):
    model = classifier.inferencer.model
    assert default_target_layers(model) == ['backbone.layer4']
    with pytest.raises(CamTargetError) as err:
        compute_cam(classifier, [patch_image(np.random.default_rng(5))],
                    target_layers=['backbone.layer5'])
    message = str(err.value)
    assert '"backbone.layer5" is not a layer' in message
    assert 'did you mean backbone.layer' in message
    for name in ('backbone.layer4', 'backbone.layer4.1', 'backbone.conv1'):
        assert name in message
    [result] = compute_cam(classifier, [patch_image(np.random.default_rng(5))],
                           target_layers=['backbone.layer3.1'])
    assert result['heatmap'].shape == (SIZE, SIZE)


def test_default_target_layers_by_backbone():
    from mmpretrain.models import DenseNet, ImageClassifier
    from mmpretrain.registry import MODELS

    densenet = ImageClassifier(backbone=dict(type='DenseNet', arch='121'))
    assert isinstance(densenet.backbone, DenseNet)
    [name] = default_target_layers(densenet)
    assert name == 'backbone.stages.3'
    assert dict(densenet.named_modules())[name] is densenet.backbone.stages[-1]
    vit = MODELS.build(
        dict(type='ImageClassifier',
             backbone=dict(type='VisionTransformer', arch='deit-tiny',
                           img_size=32, patch_size=16)))
    with pytest.raises(CamTargetError,
                       match='backbone VisionTransformer.*backbone.layers.0'):
        default_target_layers(vit)


def test_overlay_is_rgb_uint8():
    image = np.zeros((8, 8, 3), np.uint8)
    heatmap = np.zeros((8, 8), np.float32)
    heatmap[:4] = 1
    overlay = overlay_heatmap(image, heatmap)
    assert overlay.shape == (8, 8, 3) and overlay.dtype == np.uint8
    # jet: hot is red, cold is blue
    assert overlay[0, 0, 0] > overlay[0, 0, 2]
    assert overlay[7, 7, 2] > overlay[7, 7, 0]


def test_plot_cam_figure(classifier, tmp_path):
    path = tmp_path / 'red_patch.png'
    cv2.imwrite(str(path), patch_image(np.random.default_rng(6), (40, 26)))
    predicted, other = compute_cam(classifier, [str(path)])[0], \
        compute_cam(classifier, [str(path)], target_category='plain')[0]
    files = [
        plot_cam(result, str(tmp_path / 'out' / name), path.name)
        for result, name in ((predicted, 'a.png'), (other, 'b.png'))
    ]
    for file in files:
        img = cv2.imread(file)
        assert img.shape[0] >= 300 and img.shape[1] >= 600, img.shape
        assert img.std() > 10
    # same photo, another class explained: another picture
    assert not np.array_equal(cv2.imread(files[0]), cv2.imread(files[1]))
    keep_for_docs(files[0], 'cam_red_patch.png')
