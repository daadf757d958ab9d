"""Test report, inference, export and MMPretrain's tools on a checkpoint
trained by tools/train.py (once for the module, 1 epoch on the tiny data)."""
import argparse
import csv
import importlib.util
import json
import pickle
import re
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
from conftest import (REPO_ROOT, assert_user_error,
                      config_path, keep_for_docs, load_tool, run_tool,
                      score_atol)
from mmengine.config import Config, DictAction

from flower_mm.apis import PyTorchPredictor, collect_image_inputs
from flower_mm.datasets import FLOWER_CLASSES
from flower_mm.utils import cpu_has_native_bf16

MMPRETRAIN_TOOLS = Path(
    importlib.util.find_spec('mmpretrain').origin).parent / '.mim' / 'tools'
CONFIG = config_path('resnet50_flowers.py')


def tiny_cfg(options):
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    cfg = Config.fromfile(CONFIG)
    cfg.merge_from_dict(parser.parse_args(['--cfg-options',
                                           *options]).cfg_options)
    return cfg


def read_png(path):
    img = cv2.imread(str(path))
    assert img is not None, f'{path} does not decode as an image'
    height, width = img.shape[:2]
    assert 300 <= height <= 4000 and 300 <= width <= 4000, img.shape
    assert img.std() > 10, f'{path} is blank'
    return img


@pytest.fixture(scope='module')
def trained(tmp_path_factory, learned_model):
    """The session's learned model, with this module's scratch folder."""
    return SimpleNamespace(cwd=tmp_path_factory.mktemp('trained'),
                           work_dir=learned_model.work_dir,
                           checkpoint=learned_model.checkpoint,
                           options=learned_model.cfg_options,
                           cfg=tiny_cfg(learned_model.cfg_options),
                           val_images=learned_model.val_images,
                           val_labels=learned_model.val_labels)


@pytest.fixture(scope='module')
def fp32_top1(trained, mmpretrain_scores):
    """Val top-1 (%) of the checkpoint in fp32 (MMPretrain's inferencer)."""
    return 100 * float(np.mean(
        mmpretrain_scores.argmax(1) == np.array(trained.val_labels)))


def run_test_tool(trained, checkpoint, out):
    """tools/test.py CHECKPOINT --out results.pkl, as a user runs it."""
    proc = run_tool([
        REPO_ROOT / 'tools' / 'test.py', CONFIG, checkpoint, '--work-dir',
        out, '--out', out / 'results.pkl', '--cfg-options', *trained.options
    ], cwd=trained.cwd)
    with open(out / 'classification_report.json') as f:
        return SimpleNamespace(dir=out, log=proc.stdout + proc.stderr,
                               report=json.load(f),
                               results=out / 'results.pkl')


@pytest.fixture(scope='module')
def test_report(trained):
    return run_test_tool(trained, trained.checkpoint,
                         trained.cwd / 'test_out')


@pytest.fixture(scope='module')
def epoch3_report(trained, learned_model):
    """The third epoch's checkpoint (the last 3 are kept), which still gets
    some val photos wrong (80 % when measured)."""
    return run_test_tool(trained, learned_model.work_dir / 'epoch_3.pth',
                         trained.cwd / 'test_epoch_3')


def test_test_tool_reports_per_class_metrics(test_report):
    report = test_report.report
    assert report['classes'] == list(FLOWER_CLASSES)
    assert report['num_samples'] == 20
    assert [m['support'] for m in report['per_class'].values()] == [4] * 5
    # SingleLabelMetric and ConfusionMatrix must tell the same story.
    matrix = np.array(report['confusion_matrix']['counts'])
    assert matrix.shape == (5, 5) and matrix.sum() == 20
    assert report['accuracy'] == pytest.approx(
        np.trace(matrix) / 20 * 100, abs=1e-3)
    assert report['accuracy'] >= 90  # the model has learned
    predicted = matrix.sum(0)
    for i, name in enumerate(FLOWER_CLASSES):
        precision = matrix[i, i] / predicted[i] * 100 if predicted[i] else 0
        assert report['per_class'][name]['precision'] == pytest.approx(
            precision, abs=1e-3)
        assert report['per_class'][name]['recall'] == pytest.approx(
            matrix[i, i] / 4 * 100, abs=1e-3)
    assert 'Classification report:' in test_report.log
    assert 'macro avg' in test_report.log and 'weighted avg' in test_report.log
    assert 'confusion matrix (rows: true class' in test_report.log
    read_png(test_report.dir / 'confusion_matrix.png')


def test_mmpretrain_confusion_matrix_tool(trained, test_report):
    out_pkl = trained.cwd / 'cm.pkl'
    out_png = trained.cwd / 'cm_mmpretrain.png'
    run_tool([
        MMPRETRAIN_TOOLS / 'analysis_tools' / 'confusion_matrix.py', CONFIG,
        trained.checkpoint, '--out', out_pkl, '--show-path', out_png,
        '--include-values', '--cfg-options', *trained.options,
        # a plain MMEngine Runner: it needs a number (docs/evaluation.md)
        'test_dataloader.num_workers=2'
    ], cwd=trained.cwd)
    with open(out_pkl, 'rb') as f:
        matrix = pickle.load(f)
    assert matrix.tolist() == test_report.report['confusion_matrix']['counts']
    read_png(out_png)


FP32_NCHW = [
    'test_cfg.fp16=False', 'default_hooks.channels_last.enabled=False'
]


def classify(cfg, trained, device='cpu'):
    classifier = PyTorchPredictor(cfg, str(trained.checkpoint), device)
    results = classifier.predict(
        collect_image_inputs(trained.val_images), topk=5, batch_size=3,
        progress=False)
    assert [r['path'] for r in results] == trained.val_images
    assert all(r['error'] is None for r in results)
    return classifier, [{p['class']: p['score']
                         for p in r['topk']} for r in results]


@pytest.mark.parametrize('options', [FP32_NCHW, FP32_NCHW[:1]],
                         ids=['fp32 NCHW', 'fp32 channels-last'])
def test_batch_classifier_agrees_with_mmpretrain_inferencer(
        trained, mmpretrain_scores, options):
    classifier, ours = classify(tiny_cfg(trained.options + options), trained)
    assert classifier.cast_dtype is None
    assert classifier.channels_last == (len(options) == 1)
    for scores, theirs in zip(ours, mmpretrain_scores):
        assert scores == pytest.approx(
            dict(zip(FLOWER_CLASSES, theirs.tolist())), abs=1e-5)
        assert max(scores, key=scores.get) == FLOWER_CLASSES[theirs.argmax()]


def test_batch_classifier_uses_the_test_precision_and_layout(
        trained, mmpretrain_scores):
    """As tools/test.py: bf16 where native (else fp32), channels-last,
    fp32 scores; forced bf16 (emulated where not native) on every CPU.
    Both against MMPretrain's fp32 scores, at their precision's tolerance."""
    classifier, ours = classify(trained.cfg, trained)
    expected = torch.bfloat16 if cpu_has_native_bf16() else None
    assert classifier.cast_dtype == expected
    assert classifier.channels_last
    assert classifier.precision == (
        'bfloat16 autocast, channels-last' if expected else
        'float32, channels-last')
    conv = classifier.model.backbone.conv1.weight
    assert conv.is_contiguous(memory_format=torch.channels_last)
    assert not conv.is_contiguous()
    forced, forced_scores = classify(
        tiny_cfg(trained.options + ['test_cfg.fp16=True']), trained)
    assert forced.cast_dtype == torch.bfloat16
    for cast_dtype, run in ((expected, ours), (torch.bfloat16, forced_scores)):
        for scores, theirs in zip(run, mmpretrain_scores):
            assert sum(scores.values()) == pytest.approx(1, abs=1e-5)
            assert scores == pytest.approx(
                dict(zip(FLOWER_CLASSES, theirs.tolist())),
                abs=score_atol(cast_dtype))
            assert_same_top1(scores, theirs, cast_dtype)


def assert_same_top1(scores: dict, reference, cast_dtype) -> None:
    """The top-1 of ``scores`` (run at ``cast_dtype``) is the fp32
    reference's, whose lead is too large for that precision to flip."""
    second, first = np.sort(reference)[-2:]
    assert first - second > 2 * score_atol(cast_dtype), reference
    assert max(scores, key=scores.get) == FLOWER_CLASSES[reference.argmax()]


def test_infer_tool_reports_bad_files_and_keeps_going(trained, tmp_path,
                                                       mmpretrain_scores):
    photos = tmp_path / 'photos'
    (photos / 'nested').mkdir(parents=True)
    good = [photos / 'a.jpg', photos / 'nested' / 'b.png']
    # three classes: daisy, rose, tulip; the same pixels as the reference's
    shutil.copy(trained.val_images[0], good[0])
    cv2.imwrite(str(good[1]), cv2.imread(trained.val_images[9]))
    (photos / 'corrupt.jpg').write_bytes(b'not a jpeg at all')
    (photos / 'empty.png').write_bytes(b'')
    (photos / 'notes.txt').write_text('not an image, skipped in folders')
    extra = Path(trained.val_images[18])
    out_csv = tmp_path / 'pred.csv'
    proc = run_tool([
        REPO_ROOT / 'tools' / 'infer.py', CONFIG, trained.checkpoint, photos,
        extra, tmp_path / 'missing.jpg', '--out', out_csv, '--topk', '2',
        '--batch-size', '2', '--cfg-options', *trained.options
    ], cwd=tmp_path, check=False)
    assert proc.returncode == 1, proc.stderr[-3000:]

    import csv
    with open(out_csv) as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == [
        'path', 'top1_class', 'top1_score', 'top2_class', 'top2_score',
        'error'
    ]
    by_path = {Path(r['path']).name: r for r in rows}
    assert len(rows) == 6 and sorted(by_path) == sorted([
        'a.jpg', 'b.png', 'corrupt.jpg', 'empty.png', extra.name,
        'missing.jpg'
    ])
    for name, index in (('a.jpg', 0), ('b.png', 9), (extra.name, 18)):
        row = by_path[name]
        assert row['error'] == ''
        # the fp32 reference's answer, at the test precision (bf16 or fp32)
        assert_same_top1({row['top1_class']: 1.0}, mmpretrain_scores[index],
                         torch.bfloat16)
        # a confident model's second score prints as 0.000000
        assert 0 <= float(row['top2_score']) <= float(row['top1_score']) <= 1
    assert by_path['corrupt.jpg']['error'] == \
        "not an image (17 bytes starting with b'not a jp')"
    assert by_path['empty.png']['error'] == 'empty file (0 bytes)'
    assert by_path['missing.jpg']['error'] == 'file does not exist'
    assert by_path['corrupt.jpg']['top1_class'] == ''
    assert '3 of 6 images classified' in proc.stdout
    assert 'corrupt.jpg: not an image' in proc.stderr
    assert str(good[1]) in proc.stdout  # the table lists each image


def test_infer_tool_json_and_exit_codes(trained, tmp_path, monkeypatch,
                                        capsys, mmpretrain_scores):
    infer = load_tool('infer')
    out_json = tmp_path / 'pred.json'
    monkeypatch.setattr(sys, 'argv', [
        'infer.py', CONFIG, str(trained.checkpoint),
        str(Path(trained.val_images[0]).parent.parent / '*' / '*_000.jpg'),
        '--out', str(out_json), '--topk', '9', '--no-progress',
        '--cfg-options', *trained.options, *FP32_NCHW
    ])
    assert infer.main() == 0
    with open(out_json) as f:
        results = json.load(f)
    # the glob matches the first image of each class
    first_of_class = [i for i, p in enumerate(trained.val_images)
                      if p.endswith('_000.jpg')]
    assert len(first_of_class) == 5
    assert [r['path'] for r in results] == [
        trained.val_images[i] for i in first_of_class]
    for result, scores in zip(results, mmpretrain_scores[first_of_class]):
        assert result['error'] is None
        assert len(result['topk']) == 5  # --topk 9 capped at 5 classes
        assert result['topk'][0]['class'] == FLOWER_CLASSES[scores.argmax()]
        assert result['topk'][0]['score'] == pytest.approx(
            float(scores.max()), abs=1e-5)
    # one image of each class, each recognised
    assert [r['topk'][0]['class'] for r in results] == list(FLOWER_CLASSES)
    out = capsys.readouterr().out
    assert '5 of 5 images classified' in out
    assert re.search(r'classified on \w+ with pytorch \(float32\)\.', out), out

    monkeypatch.setattr(sys, 'argv', [
        'infer.py', CONFIG, str(trained.checkpoint), trained.val_images[0],
        '--out', str(tmp_path / 'pred.txt')
    ])
    with pytest.raises(SystemExit) as exc:
        infer.main()
    assert exc.value.code == 2
    assert 'must end in .csv or .json' in capsys.readouterr().err


def deployer_preprocess(path, preprocess):
    """What a deployer does from the JSON alone: OpenCV and numpy."""
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    resize, crop = preprocess['steps']
    assert (resize['type'], resize['edge'], crop['type']) == (
        'ResizeEdge', 'short', 'CenterCrop')
    h, w = img.shape[:2]
    scale = resize['scale']
    size = (scale, int(scale * h / w)) if w < h else (int(scale * w / h),
                                                      scale)
    img = cv2.resize(img, size, interpolation=cv2.INTER_LINEAR)
    ch, cw = (preprocess['input_size']['height'],
              preprocess['input_size']['width'])
    top, left = (img.shape[0] - ch) // 2, (img.shape[1] - cw) // 2
    img = img[top:top + ch, left:left + cw]
    assert preprocess['channel_order'] == 'RGB'
    img = img[..., ::-1].astype(np.float32)  # OpenCV reads BGR
    return img.transpose(2, 0, 1)


def test_export_both_formats_match_pytorch(exported_model, trained,
                                           mmpretrain_scores):
    out_dir, proc = exported_model.dir, exported_model
    metas = {}
    for fmt, file in (('torchscript', 'resnet50_flowers.torchscript.pt'),
                      ('onnx', 'resnet50_flowers.onnx')):
        assert (out_dir / file).is_file()
        with open(out_dir / (file + '.json')) as f:
            meta = metas[fmt] = json.load(f)
        parity = meta['parity']
        assert parity['passed'] and parity['num_images'] == 3
        assert parity['traced_batch_size'] < parity['num_images']
        assert parity['max_abs_diff_scores'] <= parity['tolerance'] == 1e-4
        assert f'{fmt}: {out_dir / file}' in proc.stdout
        pre = meta['preprocess']
        assert pre['classes'] == list(FLOWER_CLASSES)
        assert pre['input_size'] == {'height': 48, 'width': 48}
        assert pre['mean'] == [123.675, 116.28, 103.53]
        assert pre['std'] == [58.395, 57.12, 57.375]
        assert meta['input']['shape'] == ['batch', 3, 48, 48]

    # A deployer: photos prepared as the JSON says, a batch of 20 (the
    # exports were traced on 2), run by onnxruntime and libtorch's loader,
    # must give MMPretrain's scores (which vary: see mmpretrain_scores).
    import onnxruntime as ort
    batch = np.stack([
        deployer_preprocess(p, metas['onnx']['preprocess'])
        for p in trained.val_images
    ])
    session = ort.InferenceSession(
        str(out_dir / 'resnet50_flowers.onnx'),
        providers=['CPUExecutionProvider'])
    onnx_scores = session.run(['scores'], {'input': batch})[0]
    np.testing.assert_allclose(onnx_scores, mmpretrain_scores, atol=1e-4)
    # Negative controls: the same check fails for a deployer who feeds
    # OpenCV's BGR as is, or who scales to 0-1 as many exports expect.
    for wrong in (batch[:, ::-1].copy(), batch / 255):
        scores = session.run(['scores'], {'input': wrong})[0]
        assert np.abs(scores - mmpretrain_scores).max() > 0.3
        assert (scores.argmax(1) != mmpretrain_scores.argmax(1)).sum() >= 4
    scripted = torch.jit.load(
        str(out_dir / 'resnet50_flowers.torchscript.pt'))
    with torch.no_grad():
        ts_scores = scripted(torch.from_numpy(batch)).numpy()
    np.testing.assert_allclose(ts_scores, mmpretrain_scores, atol=1e-4)


def onnx_options(trained):
    # The ONNX model replaces the config's; only data options apply.
    return [o for o in trained.options if not o.startswith('model.')]


def test_int8_export_checks_agreement_with_pytorch(exported_model, trained,
                                                   fp32_top1):
    with open(str(exported_model.int8) + '.json') as f:
        meta = json.load(f)
    assert meta['format'] == 'onnx-int8'
    assert meta['calibration']['num_images'] == 4
    assert 'training split' in meta['calibration']['source']
    agreement = meta['agreement']
    # All 20 validation photos (fewer than --verify-images' 500).
    assert agreement['num_images'] == 20
    assert agreement['passed'] and agreement['min_agreement'] == 0.99
    assert agreement['top1_agreement'] >= 0.99
    # float32 accuracy is the checkpoint's, as MMPretrain measures it in fp32.
    assert 100 * agreement['top1_accuracy_fp32'] == pytest.approx(
        fp32_top1, abs=1e-3)
    assert 0 < agreement['max_abs_diff_scores'] < 0.05
    assert meta['preprocess']['input_size'] == {'height': 48, 'width': 48}
    assert (f'onnx-int8: {exported_model.int8} (+ .json); top-1 agreement '
            'with PyTorch 100.0 % >= 99 % on 20 validation images'
            ) in exported_model.stdout
    # int8 weights: about a quarter of the float32 file.
    assert exported_model.int8.stat().st_size < 0.35 * (
        exported_model.dir / 'resnet50_flowers.onnx').stat().st_size


def test_test_tool_on_int8_model_reports_the_same(exported_model, trained,
                                                  test_report, fp32_top1):
    out = trained.cwd / 'test_int8'
    proc = run_tool([
        REPO_ROOT / 'tools' / 'test.py', CONFIG, exported_model.int8,
        '--work-dir', out, '--cfg-options', *onnx_options(trained)
    ], cwd=trained.cwd)
    with open(out / 'classification_report.json') as f:
        report = json.load(f)
    reference = test_report.report
    assert report.keys() == reference.keys()
    assert report['per_class'].keys() == reference['per_class'].keys()
    assert report['num_samples'] == reference['num_samples'] == 20
    # int8 agrees with fp32 PyTorch on all 20 photos (the export's >= 99 %
    # check): fp32's accuracy, whatever precision test_report ran in.
    assert report['accuracy'] == pytest.approx(fp32_top1)

    def metric_keys(log):
        line = [ln for ln in log.splitlines() if 'Epoch(test)' in ln][-1]
        return re.findall(r'([\w/.-]+): ', line.split('Epoch(test)')[1])

    keys = metric_keys(proc.stdout + proc.stderr)
    assert keys == metric_keys(test_report.log)
    assert 'accuracy/top1' in keys and 'confusion_matrix/result' in keys
    assert 'confusion matrix (rows: true class' in proc.stdout + proc.stderr
    read_png(out / 'confusion_matrix.png')


def test_infer_tool_on_int8_model(exported_model, trained, tmp_path,
                                  mmpretrain_scores):
    out_csv = tmp_path / 'int8.csv'
    proc = run_tool([
        REPO_ROOT / 'tools' / 'infer.py', CONFIG, exported_model.int8,
        *trained.val_images, '--out', out_csv, '--topk', '2',
        '--no-progress'
    ], cwd=tmp_path)
    assert '20 of 20 images classified on cpu with onnxruntime (int8)' \
        in proc.stdout
    with open(out_csv) as f:
        rows = list(csv.reader(f))
    assert rows[0] == ['path', 'top1_class', 'top1_score', 'top2_class',
                       'top2_score', 'error']
    for row, scores in zip(rows[1:], mmpretrain_scores):
        assert row[1] == FLOWER_CLASSES[int(scores.argmax())]
        assert float(row[2]) == pytest.approx(scores.max(), abs=0.05)
        assert row[-1] == ''


def test_onnx_model_without_its_json_is_one_error_line(tmp_path):
    model = tmp_path / 'model.onnx'
    model.write_bytes(b'')
    proc = run_tool([REPO_ROOT / 'tools' / 'infer.py', CONFIG, model,
                     tmp_path], cwd=tmp_path, check=False)
    assert_user_error(proc, f'"{model}.json" is missing',
                      'export with tools/export.py')


def test_int8_export_calibrated_on_constant_images_fails(
        trained, tmp_path, photo_sensitive_checkpoint, flower_data_root,
        constant_images):
    out_dir = tmp_path / 'export'
    proc = run_tool([
        REPO_ROOT / 'tools' / 'export.py', CONFIG, photo_sensitive_checkpoint,
        '--format', 'onnx-int8', '--out', out_dir, '--calib-dir',
        constant_images,
        '--num-check-images', '2', '--cfg-options', *trained.options,
        # verified on the colour-blob photos, whose top-1 this model
        # varies on (it answers one class for every stripe photo)
        f'val_dataloader.dataset.data_root={flower_data_root}'
    ], cwd=tmp_path, check=False)
    int8 = out_dir / 'resnet50_flowers.int8.onnx'
    assert proc.returncode == 1
    assert_user_error(proc, f'error: {int8}: top-1 agrees with PyTorch '
                      'float32 on', 'of 15 validation photos, below the '
                      'required 99 %; do not deploy it')
    with open(str(int8) + '.json') as f:
        meta = json.load(f)
    assert meta['calibration'] == dict(
        meta['calibration'], num_images=3, source='given files')
    agreement = meta['agreement']
    assert not agreement['passed'] and agreement['top1_agreement'] < 0.99


def test_export_refuses_to_pass_a_wrong_export(trained, tmp_path,
                                               monkeypatch, capsys):
    """The check's failing path: an export fed BGR (a bug in preparing its
    inputs) is written but the tool exits 1 with "do not deploy"."""
    import flower_mm.deployment.export as export_module
    right = export_module.deploy_inputs
    monkeypatch.setattr(export_module, 'deploy_inputs',
                        lambda batch, rgb: right(batch, rgb)[:, [2, 1, 0]])
    out_dir = tmp_path / 'export'
    monkeypatch.setattr(sys, 'argv', [
        'export.py', CONFIG, str(trained.checkpoint), '--format', 'onnx',
        '--out', str(out_dir), '--check-images', *trained.val_images[::4],
        '--cfg-options', *trained.options
    ])
    assert load_tool('export').main() == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith('error: Exported scores differ from PyTorch')
    assert 'Do not deploy these files' in err[-1]
    assert 'Traceback' not in '\n'.join(err)
    with open(out_dir / 'resnet50_flowers.onnx.json') as f:
        parity = json.load(f)['parity']
    assert not parity['passed'] and not parity['top1_agree']
    assert parity['max_abs_diff_scores'] > 0.3


def test_curves_of_a_real_run(trained, tmp_path):
    from flower_mm.visualization import load_runs, plot_training_curves
    runs = load_runs([str(trained.work_dir)])
    curves = runs['resnet50_flowers']['curves']
    epochs = [1, 2, 3, 4, 5]
    assert curves['loss'][0] == epochs
    assert curves['accuracy/top1'][0] == epochs
    out = plot_training_curves(runs, str(tmp_path / 'curves.png'))
    read_png(out)


def gallery_photos(png) -> int:
    """How many photos misclassified.png shows: its large non-white
    regions (the captions are small letters)."""
    img = cv2.imread(str(png))
    assert img is not None, f'{png} does not decode'
    _, _, stats, _ = cv2.connectedComponentsWithStats(
        (img.min(axis=2) < 200).astype(np.uint8))
    return int((stats[1:, cv2.CC_STAT_AREA] > 5000).sum())


def assert_gallery_lists_the_mistakes(run) -> list:
    """misclassified.csv and .png of a tools/test.py run hold exactly the
    mistakes in its --out predictions; returns the CSV rows."""
    with open(run.results, 'rb') as f:
        dumped = pickle.load(f)  # tools/test.py --out: MMPretrain's dump
    assert len(dumped) == 20
    wrong = {
        r['img_path']: r for r in dumped
        if int(r['pred_label'][0]) != int(r['gt_label'][0])
    }
    with open(run.dir / 'misclassified.csv') as f:
        rows = list(csv.DictReader(f))
    assert sorted(r['img_path'] for r in rows) == sorted(wrong)
    matrix = np.array(run.report['confusion_matrix']['counts'])
    assert len(rows) == matrix.sum() - np.trace(matrix)
    scores = [float(r['pred_score']) for r in rows]
    assert scores == sorted(scores, reverse=True)
    assert [int(r['rank']) for r in rows] == list(range(1, len(rows) + 1))
    for row in rows:
        truth = wrong[row['img_path']]
        assert row['true_class'] == FLOWER_CLASSES[int(truth['gt_label'][0])]
        assert row['pred_class'] == FLOWER_CLASSES[int(
            truth['pred_label'][0])] != row['true_class']
        assert f'/val/{row["true_class"]}/' in row['img_path']
        assert float(row['pred_score']) == pytest.approx(
            float(truth['pred_score'].max()), abs=1e-4)
        assert float(row['true_class_score']) == pytest.approx(
            float(truth['pred_score'][int(truth['gt_label'][0])]), abs=1e-4)
    summary = f'{len(rows)} of 20 test images misclassified' if rows \
        else 'No misclassified images: all 20 are right'
    assert summary in run.log
    # one photo per mistake (up to 25); none on the "all right" banner
    assert gallery_photos(run.dir / 'misclassified.png') == min(25, len(rows))
    return rows


def test_test_tool_writes_the_misclassified_gallery(test_report):
    assert_gallery_lists_the_mistakes(test_report)


def test_gallery_of_a_checkpoint_that_makes_mistakes(epoch3_report,
                                                     learned_model):
    rows = assert_gallery_lists_the_mistakes(epoch3_report)
    # tools/test.py measures what validation did after epoch 3 (both at
    # the test precision)
    accuracy = learned_model.val_accuracies[2]
    assert epoch3_report.report['accuracy'] == pytest.approx(accuracy)
    assert len(rows) == round(20 * (100 - accuracy) / 100) >= 2
    keep_for_docs(epoch3_report.dir / 'misclassified.png')


def test_mmpretrain_analyze_results_tool(trained, epoch3_report, tmp_path):
    """MMPretrain's analyze_results.py reads what tools/test.py --out wrote
    for a checkpoint with successes and failures (the installed flower_mm
    is what its custom_imports load)."""
    with open(epoch3_report.results, 'rb') as f:
        dumped = pickle.load(f)
    num_wrong = sum(
        int(r['pred_label'][0]) != int(r['gt_label'][0]) for r in dumped)
    assert num_wrong >= 2
    out = tmp_path / 'analysis'
    run_tool([
        MMPRETRAIN_TOOLS / 'analysis_tools' / 'analyze_results.py', CONFIG,
        epoch3_report.results, '--out-dir', out, '--topk', '3',
        '--cfg-options', *trained.options
    ], cwd=trained.cwd)
    for folder, count in (('success', 20 - num_wrong), ('fail', num_wrong)):
        pngs = sorted((out / folder).glob('*.png'))
        assert len(pngs) == min(3, count), folder
        for png in pngs:
            assert cv2.imread(str(png)) is not None
        assert (out / folder / f'{folder}.json').is_file()


def test_vis_cam_tool_on_images_and_folders(trained, tmp_path,
                                           mmpretrain_scores):
    folder = Path(trained.val_images[0]).parent  # val/daisy: 4 images
    dandelion = trained.val_images[4]
    out = tmp_path / 'cams'
    proc = run_tool([
        REPO_ROOT / 'tools' / 'vis_cam.py', CONFIG, trained.checkpoint,
        dandelion, folder, '--out', out, '--method',
        'GradCAM++', '--target-category', 'rose', '--device', 'cpu',
        '--cfg-options', *trained.options
    ], cwd=tmp_path)
    images = [dandelion] + sorted(map(str, folder.glob('*.jpg')))
    pngs = sorted(out.glob('*_cam.png'))
    assert [p.name for p in pngs] == sorted(
        Path(p).stem + '_cam.png' for p in images)
    for png in pngs:
        read_png(png)
    lines = [line for line in proc.stdout.splitlines() if ' -> ' in line]
    assert [line.split(':')[0] for line in lines] == images
    for line in lines:
        path, answer = line.split(' -> ')[0].split(': ')
        pred_class, score = answer.split()
        # The CAM's prediction runs in fp32, as the reference's (printed
        # to 4 decimals).
        reference = mmpretrain_scores[trained.val_images.index(path)]
        assert pred_class == FLOWER_CLASSES[reference.argmax()]
        assert float(score) == pytest.approx(reference.max(), abs=1e-4)
    assert f'5 CAM images written to {out}' in proc.stdout
    assert '5/5' in proc.stderr  # MMEngine's progress bar


def test_vis_cam_target_category_changes_the_map(trained, tmp_path,
                                                 monkeypatch,
                                                 mmpretrain_scores):
    """--target-category NAME explains that class: the same photo and
    prediction, another map."""
    vis_cam = load_tool('vis_cam')
    drawn = []
    plot_cam = vis_cam.plot_cam

    def plot_and_keep(result, *args):
        drawn.append(result)
        return plot_cam(result, *args)

    monkeypatch.setattr(vis_cam, 'plot_cam', plot_and_keep)
    daisy = trained.val_images[0]
    for flags in ([], ['--target-category', 'rose']):
        monkeypatch.setattr(sys, 'argv', [
            'vis_cam.py', CONFIG, str(trained.checkpoint), daisy, '--out',
            str(tmp_path / str(len(drawn))), *flags, '--cfg-options',
            *trained.options
        ])
        assert vis_cam.main() == 0
    predicted, rose = drawn
    assert FLOWER_CLASSES[mmpretrain_scores[0].argmax()] == 'daisy'
    assert predicted['target_class'] == predicted['pred_class'] == 'daisy'
    assert (rose['target_class'], rose['pred_class']) == ('rose', 'daisy')
    # each map is scaled to [0, 1]: they differ where the evidence does
    assert np.abs(rose['heatmap'] - predicted['heatmap']).max() > 0.5


def test_vis_cam_tool_names_the_valid_target_layers(trained, tmp_path,
                                                   monkeypatch, capsys):
    vis_cam = load_tool('vis_cam')
    monkeypatch.setattr(sys, 'argv', [
        'vis_cam.py', CONFIG, str(trained.checkpoint), trained.val_images[0],
        '--out', str(tmp_path), '--target-layers', 'backbone.layer9',
        '--cfg-options', *trained.options
    ])
    with pytest.raises(SystemExit) as exc:
        vis_cam.main()
    message = str(exc.value.code)
    assert message.startswith('error: --target-layers "backbone.layer9" is '
                              'not a layer of the model')
    assert '\n' not in message
    for name in ('backbone.layer4', 'backbone.layer4.2', 'backbone.conv1'):
        assert name in message
    assert not list(tmp_path.glob('*.png'))


def test_tensorboard_event_files_hold_loss_and_accuracy(trained):
    """tools/train.py --tensorboard: events beside scalars.json."""
    from tensorboard.backend.event_processing.event_accumulator import \
        EventAccumulator
    [scalars] = trained.work_dir.glob('*/vis_data/scalars.json')
    events = list(scalars.parent.glob('events.out.tfevents.*'))
    assert len(events) == 1, list(scalars.parent.iterdir())
    acc = EventAccumulator(str(events[0]))
    acc.Reload()
    tags = acc.Tags()['scalars']
    assert {'loss', 'lr', 'accuracy/top1'} <= set(tags), tags
    logged = [json.loads(line) for line in scalars.read_text().splitlines()]
    top1 = [r['accuracy/top1'] for r in logged if 'accuracy/top1' in r]
    assert [e.value for e in acc.Scalars('accuracy/top1')] == pytest.approx(
        top1)
    losses = [r['loss'] for r in logged if 'loss' in r]
    assert [e.value for e in acc.Scalars('loss')] == pytest.approx(losses)
