import shutil

import cv2
import numpy as np
import pytest
from conftest import make_flower_dataset, make_flower_image, run_at_once

from flower_mm.datasets import FLOWER_CLASSES, FlowerDataError, FlowerDataset


@pytest.fixture
def data_root(tmp_path):
    return make_flower_dataset(tmp_path / 'flower_dataset', 2, 1)


def test_reads_class_folders_with_fixed_labels(data_root):
    dataset = FlowerDataset(data_root=str(data_root), data_prefix='train')
    assert dataset.CLASSES == FLOWER_CLASSES
    assert len(dataset) == 10
    for info in map(dataset.get_data_info, range(len(dataset))):
        cls_name = info['img_path'].split('/')[-2]
        assert info['gt_label'] == FLOWER_CLASSES.index(cls_name)


def test_reads_an_annotation_file(data_root):
    (data_root / 'val.txt').write_text('tulip/tulip_000.jpg 4\n'
                                       'daisy/daisy_000.jpg 0\n')
    dataset = FlowerDataset(
        data_root=str(data_root), data_prefix='val', ann_file='val.txt')
    infos = map(dataset.get_data_info, range(len(dataset)))
    assert [(i['img_path'], i['gt_label']) for i in infos] == [
        (str(data_root / 'val' / 'tulip' / 'tulip_000.jpg'), 4),
        (str(data_root / 'val' / 'daisy' / 'daisy_000.jpg'), 0),
    ]


def test_missing_data_root_says_how_to_get_the_data(tmp_path):
    with pytest.raises(FlowerDataError) as err:
        FlowerDataset(
            data_root=str(tmp_path / 'nowhere'), data_prefix='train',
            prepare=False)
    msg = str(err.value)
    assert f'"{tmp_path / "nowhere"}" does not exist' in msg
    assert 'python tools/prepare_flowers.py' in msg
    assert '<data_root>/train/<class>/*.jpg' in msg


def test_missing_split_folder(data_root):
    shutil.rmtree(data_root / 'val')
    with pytest.raises(FlowerDataError, match=r'Split folder ".*val" does '
                       'not exist'):
        FlowerDataset(data_root=str(data_root), data_prefix='val')


def test_missing_and_unexpected_class_folders_are_named(data_root):
    (data_root / 'train' / 'rose').rename(data_root / 'train' / 'roses')
    with pytest.raises(FlowerDataError) as err:
        FlowerDataset(data_root=str(data_root), data_prefix='train')
    msg = str(err.value)
    assert "missing: ['rose']" in msg
    assert "unexpected: ['roses']" in msg
    assert "expected exactly ['daisy', 'dandelion', 'rose', 'sunflower', " \
           "'tulip']" in msg


def test_class_without_images_is_an_error(data_root):
    for f in (data_root / 'train' / 'tulip').iterdir():
        f.unlink()
    (data_root / 'train' / 'tulip' / 'notes.txt').write_text('no image')
    with pytest.raises(FlowerDataError,
                       match=r"has no images .* for the classes \['tulip'\]"):
        FlowerDataset(data_root=str(data_root), data_prefix='train')


def test_empty_annotation_file_is_an_empty_split(data_root):
    (data_root / 'train.txt').write_text('')
    with pytest.raises(FlowerDataError, match='is empty: it lists no images'):
        FlowerDataset(
            data_root=str(data_root), data_prefix='train',
            ann_file='train.txt')


def test_bad_annotation_line_names_file_and_line(data_root):
    (data_root / 'train.txt').write_text('daisy/daisy_000.jpg 0\n'
                                         'daisy/daisy_001.jpg 7\n')
    with pytest.raises(FlowerDataError,
                       match=r'train.txt, line 2: expected "<image path> '
                       r'<label 0..4>", got "daisy/daisy_001.jpg 7"'):
        FlowerDataset(
            data_root=str(data_root), data_prefix='train',
            ann_file='train.txt')


def write_raw_photos(root, folders, per_class=5):
    """One folder of photos per class, as a downloaded archive has."""
    rng = np.random.default_rng(0)
    for label, folder in enumerate(folders):
        (root / folder).mkdir(parents=True)
        for i in range(per_class):
            cv2.imwrite(str(root / folder / f'{i}.jpg'),
                        make_flower_image(label, rng))


@pytest.mark.parametrize('prepare', ['auto', True])
def test_prepare_on_first_use_splits_the_raw_photos(tmp_path, prepare):
    """An empty data root is filled from a raw one-folder-per-class source
    by default ('auto') and with prepare=True."""
    write_raw_photos(tmp_path / 'raw',
                     ('daisy', 'dandelion', 'roses', 'sunflowers', 'tulips'))
    data_root = tmp_path / 'flower_dataset'
    kwargs = dict(
        data_root=str(data_root),
        prepare=prepare,
        prepare_source=str(tmp_path / 'raw'))
    train = FlowerDataset(data_prefix='train', **kwargs)
    val = FlowerDataset(data_prefix='val', **kwargs)  # already prepared
    assert (len(train), len(val)) == (20, 5)
    labels = [train.get_data_info(i)['gt_label'] for i in range(len(train))]
    assert labels == [0] * 4 + [1] * 4 + [2] * 4 + [3] * 4 + [4] * 4
    assert sorted(p.name for p in (data_root / 'val').iterdir()) == list(
        FLOWER_CLASSES)


def test_auto_prepare_uses_a_hand_made_split_as_it_is(data_root, tmp_path):
    """'auto' never touches a split that is there: no download, no re-split,
    even from a source that does not exist."""
    before = sorted(p.relative_to(data_root) for p in data_root.rglob('*'))
    dataset = FlowerDataset(
        data_root=str(data_root),
        data_prefix='train',
        prepare_source=str(tmp_path / 'no_such_archive.tgz'))
    assert len(dataset) == 10
    assert sorted(p.relative_to(data_root)
                  for p in data_root.rglob('*')) == before


def test_prepare_must_be_a_known_mode(data_root):
    with pytest.raises(ValueError, match="True, False or 'auto', not 'yes'"):
        FlowerDataset(
            data_root=str(data_root), data_prefix='train', prepare='yes')


def test_processes_building_at_once_prepare_once(tmp_path):
    """As the ranks of a distributed run: one prepares, the others wait
    for it (the preparation's lock) and read its split."""
    write_raw_photos(tmp_path / 'raw', FLOWER_CLASSES)
    data_root = tmp_path / 'flower_dataset'
    sizes, errors = run_at_once(lambda: len(FlowerDataset(
        data_root=str(data_root), data_prefix='train',
        prepare_source=str(tmp_path / 'raw'))))
    assert errors == [] and sizes == [20, 20, 20]
    assert not list(data_root.glob('.staging-*'))
    assert len(list(data_root.glob('train/*/*.jpg'))) == 20
