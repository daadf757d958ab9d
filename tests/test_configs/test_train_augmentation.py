"""What the flower train pipeline feeds the network in a real run.

tools/train.py trains configs/resnet18_flowers.py (the flower pipeline of
resnet50_flowers.py) for 2 epochs on probe images whose augmented versions
can be read back: a flat colour (only the colour jitter changes it), grey
ramps across and down (their direction tells the flips apart) and a
checkerboard (how many squares a crop shows). A test-only hook
(tests/input_probe_test_hooks.py) records every batch. The negative
control is the same run with the augmentations removed (resize only).
"""
import numpy as np
import pytest
import torch
from conftest import (REPO_ROOT, config_path, run_tool, tiny_cfg_options)

SOURCE = 128  # px, the probe images
SIZE = 32  # px, the train crop and the val centre crop
# BGR; hues 23 and 230 degrees: a jitter of +-36 degrees keeps red, and
# blue, the brightest channel
ORANGE, BLUE = (40, 110, 220), (220, 70, 40)
#: class folder -> probe image kind
PROBES = dict(daisy='orange', dandelion='x_ramp', rose='y_ramp',
              sunflower='checker', tulip='blue')
IMAGENET_MEAN = [123.675, 116.28, 103.53]  # RGB
IMAGENET_STD = [58.395, 57.12, 57.375]
NO_AUGMENTATION = (
    "train_dataloader = dict(dataset=dict(pipeline=["
    "dict(type='RobustLoadImageFromFile', ignore_empty=True), "
    "dict(type='Resize', scale=32), dict(type='PackInputs')]))\n")


def probe_image(kind: str) -> np.ndarray:
    rows, cols = np.mgrid[0:SOURCE, 0:SOURCE]
    ramp = 32 + 192 * np.arange(SOURCE) / (SOURCE - 1)
    grey = {
        'x_ramp': np.broadcast_to(ramp[None, :], (SOURCE, SOURCE)),
        'y_ramp': np.broadcast_to(ramp[:, None], (SOURCE, SOURCE)),
        'checker': 255 * ((rows // 16 + cols // 16) % 2),
    }
    if kind in grey:
        return np.repeat(grey[kind][..., None], 3, axis=2).astype(np.uint8)
    return np.full((SOURCE, SOURCE, 3), ORANGE if kind == 'orange' else BLUE,
                   np.uint8)


@pytest.fixture(scope='module')
def probe_root(tmp_path_factory):
    import cv2
    root = tmp_path_factory.mktemp('probe') / 'flower_dataset'
    for split, copies in (('train', 4), ('val', 1)):
        for folder, kind in PROBES.items():
            (root / split / folder).mkdir(parents=True)
            for i in range(copies):  # PNG: a flat colour stays flat
                cv2.imwrite(str(root / split / folder / f'{kind}_{i}.png'),
                            probe_image(kind))
    return root


def record_inputs(tmp_path, data_root, checkpoint, extra_config=''):
    """Train 2 epochs with RecordModelInputsHook; its records."""
    out_file = tmp_path / 'inputs.pth'
    config = tmp_path / 'resnet18_flowers.py'
    config.write_text(
        f"_base_ = [{config_path('resnet18_flowers.py')!r}]\n"
        "custom_imports = dict(imports=['flower_mm.registration', "
        "'input_probe_test_hooks'], allow_failed_imports=False)\n"
        "default_hooks = dict(record_inputs=dict("
        f"type='RecordModelInputsHook', out_file={str(out_file)!r}))\n" +
        extra_config)
    run_tool([
        REPO_ROOT / 'tools' / 'train.py', config, '--work-dir',
        tmp_path / 'work_dir', '--cfg-options',
        *tiny_cfg_options(data_root, checkpoint, epochs=2, batch_size=5,
                          size=SIZE),
        'default_hooks.checkpoint.interval=100'  # no checkpoints needed
    ], cwd=tmp_path, env={'PYTHONPATH': str(REPO_ROOT / 'tests')})
    images = {}  # (split, epoch, kind) -> [(path, raw HWC BGR, fed CHW)]
    for record in torch.load(out_file):
        for path, raw, fed in zip(record['paths'], record['raw'],
                                  record['fed']):
            kind = PROBES[path.split('/')[-2]]
            images.setdefault((record['split'], record['epoch'], kind),
                              []).append((path, raw.permute(1, 2, 0).numpy(),
                                          fed.numpy()))
    for value in images.values():
        value.sort(key=lambda item: item[0])
    return images


@pytest.fixture(scope='module')
def shipped(tmp_path_factory, probe_root, resnet18_ckpt):
    return record_inputs(tmp_path_factory.mktemp('shipped'), probe_root,
                         resnet18_ckpt)


@pytest.fixture(scope='module')
def unaugmented(tmp_path_factory, probe_root, resnet18_ckpt):
    """The negative control: the same run, resize only."""
    return record_inputs(tmp_path_factory.mktemp('unaugmented'), probe_root,
                         resnet18_ckpt, NO_AUGMENTATION)


def raw_images(images, split, epoch, kind) -> list:
    found = images[(split, epoch, kind)]
    assert len(found) == (4 if split == 'train' else 1), found
    return [raw for _, raw, _ in found]


def flat_colours(images, epoch, kind) -> list:
    """The colour (BGR) of each flat probe image in a train epoch."""
    colours = []
    for raw in raw_images(images, 'train', epoch, kind):
        assert (raw == raw[0, 0]).all(), 'a flat colour is no longer flat'
        colours.append(tuple(raw[0, 0].tolist()))
    return colours


def ramp_direction(raw: np.ndarray, axis: int) -> int:
    """+1 when brightness rises along ``axis`` (0: down, 1: across), -1
    when it falls: the colour jitter maps grey levels monotonically, so
    only a flip reverses a ramp."""
    profile = raw.astype(float).mean(axis=(1 - axis, 2))
    return int(np.sign(np.corrcoef(profile, np.arange(len(profile)))[0, 1]))


def squares_shown(raw: np.ndarray) -> tuple:
    """Edges crossed by the middle row and column of a checkerboard:
    7 for the whole board, fewer for a crop; flips and the jitter (a
    monotonic grey map) leave the count alone."""
    grey = raw.astype(float).mean(axis=2)
    bright = grey > (grey.min() + grey.max()) / 2
    middle = SIZE // 2
    return (int((bright[middle, 1:] != bright[middle, :-1]).sum()),
            int((bright[1:, middle] != bright[:-1, middle]).sum()))


def test_colour_jitter_is_drawn_anew_every_epoch(shipped, unaugmented):
    for kind in ('orange', 'blue'):
        val = tuple(raw_images(shipped, 'val', 1, kind)[0][0, 0].tolist())
        assert val == (ORANGE if kind == 'orange' else BLUE)
        epochs = [flat_colours(shipped, epoch, kind) for epoch in (1, 2)]
        # every copy of the photo, in every epoch, in a colour of its own
        assert len(set(epochs[0] + epochs[1])) == 8, epochs
        assert val not in epochs[0] + epochs[1]
        # but jittered, not channel-swapped: the same channel is brightest
        brightest = np.argmax(val)
        for colour in epochs[0] + epochs[1]:
            assert colour[brightest] == max(colour) > min(colour), (
                kind, colour, val)
        # negative control: without the jitter, the photo's own colour
        assert set(flat_colours(unaugmented, 1, kind) +
                   flat_colours(unaugmented, 2, kind)) == {val}


def test_both_flips_happen(shipped, unaugmented):
    for kind, axis in (('x_ramp', 1), ('y_ramp', 0)):
        directions = [
            ramp_direction(raw, axis) for epoch in (1, 2)
            for raw in raw_images(shipped, 'train', epoch, kind)
        ]
        assert set(directions) == {1, -1}, (kind, directions)
        # the other flip leaves this ramp as it is: no spurious reversal
        assert all(ramp_direction(raw, axis) == 1
                   for raw in raw_images(shipped, 'val', 1, kind))
        # negative control: never reversed without the flips
        assert {ramp_direction(raw, axis) for epoch in (1, 2)
                for raw in raw_images(unaugmented, 'train', epoch, kind)
                } == {1}, kind


def test_crops_change_every_epoch(shipped, unaugmented):
    shown = [[squares_shown(raw)
              for raw in raw_images(shipped, 'train', epoch, 'checker')]
             for epoch in (1, 2)]
    # a crop shows part of the board (7 edges: all of it) ...
    assert all(row <= 7 and col <= 7 for row, col in shown[0] + shown[1])
    assert sum(count != (7, 7) for count in shown[0] + shown[1]) >= 4, shown
    # ... a different part for each copy and in each epoch
    assert len(set(shown[0] + shown[1])) >= 4, shown
    assert sum(a != b for a, b in zip(*shown)) >= 3, shown
    # negative control: the whole board, always
    assert {squares_shown(raw) for epoch in (1, 2)
            for raw in raw_images(unaugmented, 'train', epoch, 'checker')
            } == {(7, 7)}


@pytest.mark.parametrize('split', ['train', 'val'])
def test_network_sees_imagenet_normalised_rgb(shipped, unaugmented, split):
    """Train and val inputs go through the same normalisation: RGB, minus
    ImageNet's mean, over its std (what the pretrained weights expect)."""
    mean = np.array(IMAGENET_MEAN).reshape(3, 1, 1)
    std = np.array(IMAGENET_STD).reshape(3, 1, 1)
    for images in (shipped, unaugmented):
        for (kind_split, _, _), found in images.items():
            if kind_split != split:
                continue
            for path, raw, fed in found:
                rgb = raw[..., ::-1].transpose(2, 0, 1).astype(np.float64)
                np.testing.assert_allclose(fed, (rgb - mean) / std,
                                           atol=1e-5, err_msg=path)
    # unaugmented, a flat photo is fed exactly as in validation
    for kind in ('orange', 'blue'):
        [(_, _, val)] = shipped[('val', 1, kind)]
        for _, _, fed in unaugmented[('train', 1, kind)]:
            np.testing.assert_allclose(fed, val, atol=1e-6)
