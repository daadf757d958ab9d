"""configs/resnet50_custom_folders.py: any class-folder dataset, the model
sized by its classes (num_classes='auto')."""
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import (REPO_ROOT, config_path, make_flower_image, run_tool,
                      tiny_cfg_options)

from flower_mm.apis import PyTorchPredictor
from flower_mm.datasets import ClassFolderDataset, FlowerDataError
from flower_mm.utils import set_auto_num_classes, uses_auto_num_classes

CLASSES = ('cat', 'dog', 'owl')  # not flowers, not five


def write_class_folders(root, per_class=None, classes=CLASSES):
    per_class = per_class or {'train': 3, 'val': 2}
    rng = np.random.default_rng(0)
    for split, n in per_class.items():
        for label, name in enumerate(classes):
            (root / split / name).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                cv2.imwrite(str(root / split / name / f'{i}.jpg'),
                            make_flower_image(label, rng))
    return root


def test_classes_are_the_folder_names_or_classes_txt(tmp_path):
    root = write_class_folders(tmp_path / 'photos', {'train': 1})
    dataset = ClassFolderDataset(data_root=str(root), data_prefix='train')
    assert dataset.CLASSES == CLASSES
    assert [dataset.get_data_info(i)['gt_label'] for i in range(3)] == [
        0, 1, 2
    ]
    # classes.txt fixes the order: labels follow it, not the alphabet.
    (root / 'classes.txt').write_text('owl\ncat\ndog\n')
    dataset = ClassFolderDataset(data_root=str(root), data_prefix='train')
    assert dataset.CLASSES == ('owl', 'cat', 'dog')
    infos = [dataset.get_data_info(i) for i in range(3)]
    assert [(i['img_path'].split('/')[-2], i['gt_label'])
            for i in infos] == [('owl', 0), ('cat', 1), ('dog', 2)]


def test_a_split_missing_a_class_is_named(tmp_path):
    root = write_class_folders(tmp_path / 'photos', {'train': 1, 'val': 1})
    for f in (root / 'val' / 'owl').iterdir():
        f.unlink()
    (root / 'val' / 'owl').rmdir()
    with pytest.raises(FlowerDataError) as err:
        ClassFolderDataset(
            data_root=str(root), data_prefix='val', classes=list(CLASSES))
    assert "missing: ['owl']" in str(err.value)
    assert 'same class folders in every split' in str(err.value)


def test_custom_folders_config_trains_and_tests_three_classes(
        tmp_path, pretrained_ckpt):
    root = write_class_folders(tmp_path / 'photos')
    options = tiny_cfg_options(root, pretrained_ckpt, epochs=1, batch_size=3)
    work_dir = tmp_path / 'work'
    train = run_tool([
        REPO_ROOT / 'tools' / 'train.py',
        config_path('resnet50_custom_folders.py'), '--work-dir', work_dir,
        '--cfg-options', *options
    ],
                     cwd=tmp_path)
    assert 'num_classes=auto: 3 classes (cat, dog, owl)' in train.stdout
    assert 'Epoch(train) [1][3/3]' in train.stdout
    # The dumped config carries the number: it rebuilds the model alone.
    dumped = (work_dir / 'resnet50_custom_folders.py').read_text()
    assert "num_classes='auto'" not in dumped
    assert 'num_classes=3' in dumped

    best = next(work_dir.glob('best_accuracy_top1_epoch_1.pth'))
    test = run_tool([
        REPO_ROOT / 'tools' / 'test.py',
        config_path('resnet50_custom_folders.py'), best, '--work-dir',
        work_dir, '--cfg-options', *options
    ],
                    cwd=tmp_path)
    assert 'Epoch(test)' in test.stdout
    report = json.loads((work_dir / 'classification_report.json').read_text())
    assert report['classes'] == list(CLASSES)
    assert sorted(report['per_class']) == list(CLASSES)
    assert sum(report['per_class'][c]['support'] for c in CLASSES) == 6
    for name in CLASSES:  # the logged table names every class
        assert any(line.split()[:1] == [name]
                   for line in test.stdout.splitlines()), name

    # Prediction sizes the model by the checkpoint's classes.
    classifier = PyTorchPredictor(
        config_path('resnet50_custom_folders.py'), str(best), device='cpu')
    assert classifier.classes == list(CLASSES)
    assert classifier.inferencer.model.head.num_classes == 3

    # So does export: 3 scores per photo, named in its JSON, checked on
    # the photos of the val split.
    export = run_tool([
        REPO_ROOT / 'tools' / 'export.py',
        config_path('resnet50_custom_folders.py'), best, '--format', 'onnx',
        '--out', tmp_path / 'export', '--cfg-options', *options
    ], cwd=tmp_path)
    onnx_file = tmp_path / 'export' / 'resnet50_custom_folders.onnx'
    assert f'onnx: {onnx_file}' in export.stdout
    meta = json.loads(Path(f'{onnx_file}.json').read_text())
    assert meta['preprocess']['classes'] == list(CLASSES)
    assert meta['parity']['passed'] and meta['parity']['num_images'] == 6
    import onnxruntime as ort
    session = ort.InferenceSession(str(onnx_file),
                                   providers=['CPUExecutionProvider'])
    scores = session.run(['scores'], {
        'input': np.zeros((2, 3, 64, 64), np.float32)})[0]
    assert scores.shape == (2, 3)


def test_auto_sets_only_what_says_auto():
    """A number written by hand stays, so ConfigCheckHook still reports a
    mismatch with the data (tests/test_config_checks.py)."""
    model = dict(
        head=dict(num_classes='auto'),
        data_preprocessor=dict(num_classes=5))
    top = dict(data_preprocessor=dict(num_classes='auto'))
    assert uses_auto_num_classes(model)
    set_auto_num_classes(model, 3, top)
    assert model == dict(
        head=dict(num_classes=3), data_preprocessor=dict(num_classes=5))
    assert top == dict(data_preprocessor=dict(num_classes=3))
    assert not uses_auto_num_classes(model)
