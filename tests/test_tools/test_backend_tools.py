"""Every backend through tools/infer.py and tools/test.py on the session's
learned model: the same top-1 as PyTorch float32 on its 20 val photos
(int8: at least 99 %, so all 20 here), and the bad inputs each as one
error line."""
import json
import pickle
import shutil
import sys

import numpy as np
import pytest
from conftest import REPO_ROOT, assert_user_error, load_tool, run_tool

from flower_mm.datasets import FLOWER_CLASSES
from flower_mm.deployment import openvino_unavailable_reason
from flower_mm.utils import cpu_has_native_bf16

NATIVE_BF16 = cpu_has_native_bf16()
OPENVINO_FLOAT = 'bfloat16' if NATIVE_BF16 else 'float32'
FP32 = ['test_cfg.fp16=False', 'default_hooks.channels_last.enabled=False']
# (model: a checkpoint or an export, --backend, extra --cfg-options, what
# the tool says ran: backend (precision))
# (Eager PyTorch against MMPretrain's inferencer, in float32 and at the
# test precision: tests/test_tools/test_trained_checkpoint_tools.py.)
CASES = {
    'pytorch-compiled': ('checkpoint', 'pytorch-compiled', [],
                         'pytorch-compiled ({})'.format(
                             'bfloat16 autocast, channels-last'
                             if NATIVE_BF16 else 'float32, channels-last')),
    'onnx fp32 on onnxruntime': ('onnx', 'onnxruntime', [],
                                 'onnxruntime (float32)'),
    'onnx fp32 on openvino': ('onnx', 'openvino', [],
                              f'openvino ({OPENVINO_FLOAT})'),
    'openvino fp32 IR in fp32': ('openvino', 'openvino', FP32[:1],
                                 'openvino (float32)'),
    'onnx int8': ('int8', 'onnxruntime', [], 'onnxruntime (int8)'),
    'openvino int8': ('openvino_int8', 'openvino', [], 'openvino (int8{})'
                      .format(', bfloat16 elsewhere' if NATIVE_BF16 else '')),
}
INT8 = ('onnx int8', 'openvino int8')


def model_of(kind, learned_model, exported_model):
    if kind == 'checkpoint':
        return learned_model.checkpoint
    return getattr(exported_model, kind)


def data_options(learned_model, export):
    # An export replaces the config's model; only data options apply.
    return [o for o in learned_model.cfg_options
            if not (export and o.startswith('model.'))]


def run_case(tool, case, learned_model, exported_model, tmp_path, *args):
    """tools/<tool> on the case's model and --backend, with ``args``."""
    kind, backend, options, _ = CASES[case]
    return run_tool([
        REPO_ROOT / 'tools' / tool, learned_model.config,
        model_of(kind, learned_model, exported_model), *args, '--backend',
        backend, '--cfg-options',
        *data_options(learned_model, kind != 'checkpoint'), *options
    ], cwd=tmp_path)


@pytest.mark.parametrize('case', list(CASES))
def test_infer_tool_gives_pytorch_fp32_answers_on_every_backend(
        case, learned_model, exported_model, mmpretrain_scores, tmp_path):
    _, backend, _, ran = CASES[case]
    out = tmp_path / 'predictions.json'
    proc = run_case('infer.py', case, learned_model, exported_model,
                    tmp_path, *learned_model.val_images, '--out', out,
                    '--topk', '5', '--no-progress')
    assert f'20 of 20 images classified on cpu with {ran}.' in proc.stdout
    assert f'Backend: {backend} (' in proc.stdout + proc.stderr
    results = json.loads(out.read_text())
    top1 = [FLOWER_CLASSES.index(r['topk'][0]['class']) for r in results]
    reference = mmpretrain_scores.argmax(1).tolist()
    agreement = np.mean(np.array(top1) == reference)
    assert agreement >= (0.99 if case in INT8 else 1), (top1, reference)
    scores = np.array([[dict((p['class'], p['score']) for p in r['topk'])[c]
                        for c in FLOWER_CLASSES] for r in results])
    # Scores at the precision each ran in: float32 paths to 1e-4, bf16
    # and int8 ones within a few hundredths.
    exact = 'float32' in ran and 'channels-last' not in ran
    assert np.abs(scores - mmpretrain_scores).max() <= (
        1e-4 if exact else 0.1)


@pytest.mark.parametrize('case', ['onnx fp32 on onnxruntime',
                                  'openvino fp32 IR in fp32',
                                  'openvino int8', 'pytorch-compiled'])
def test_test_tool_gives_pytorch_fp32_answers_on_backends(
        case, learned_model, exported_model, mmpretrain_scores, tmp_path):
    kind, backend, _, ran = CASES[case]
    out = tmp_path / 'results.pkl'
    proc = run_case('test.py', case, learned_model, exported_model,
                    tmp_path, '--work-dir', tmp_path / 'work', '--out', out)
    log = proc.stdout + proc.stderr
    if kind == 'checkpoint':
        assert "compile: the model's forward is compiled" in log
    else:
        model = model_of(kind, learned_model, exported_model)
        assert f'Backend: {backend} ({model.name}; asked for)' in log
        # at the config's test precision (--cfg-options test_cfg.fp16=...)
        assert f'ExportedClassifier: {model.name} on {ran}' in log
    with open(out, 'rb') as f:
        dumped = pickle.load(f)
    by_path = {r['img_path']: int(r['pred_label'][0]) for r in dumped}
    top1 = [by_path[p] for p in learned_model.val_images]
    assert top1 == mmpretrain_scores.argmax(1).tolist()
    report = json.loads((tmp_path / 'work' /
                         'classification_report.json').read_text())
    assert report['num_samples'] == 20 and report['accuracy'] >= 90


def test_an_ir_without_its_json_is_one_error_line(exported_model, tmp_path,
                                                  learned_model):
    ir = tmp_path / 'model.xml'
    shutil.copy(exported_model.openvino, ir)
    shutil.copy(exported_model.openvino.with_suffix('.bin'),
                tmp_path / 'model.bin')
    proc = run_tool([REPO_ROOT / 'tools' / 'infer.py', learned_model.config,
                     ir, learned_model.val_images[0]], cwd=tmp_path,
                    check=False)
    assert_user_error(proc, f'"{ir}.json" is missing',
                      'export with tools/export.py')


def test_an_export_for_other_classes_is_one_error_line(
        exported_model, learned_model, tmp_path):
    three_classes = tmp_path / 'resnet50_three_classes.py'
    three_classes.write_text(f"_base_ = '{learned_model.config}'\n"
                             'model = dict(head=dict(num_classes=3))\n')
    for tool in ('infer.py', 'test.py'):
        args = [learned_model.val_images[0]] if tool == 'infer.py' else [
            '--work-dir', tmp_path / 'work']
        proc = run_tool([REPO_ROOT / 'tools' / tool, three_classes,
                         exported_model.openvino_int8, *args], cwd=tmp_path,
                        check=False)
        assert_user_error(
            proc, f'"{exported_model.openvino_int8}" was exported for 5 '
            'classes (daisy, dandelion, rose, sunflower, tulip) but the '
            "config's model.head.num_classes is 3")


def test_backends_that_cannot_run_here_are_one_error_line(
        learned_model, exported_model, tmp_path, monkeypatch, capsys):
    # A runtime backend on a checkpoint, PyTorch on an export: the tools
    # say what to pass instead.
    proc = run_tool([REPO_ROOT / 'tools' / 'infer.py', learned_model.config,
                     learned_model.checkpoint, learned_model.val_images[0],
                     '--backend', 'openvino'], cwd=tmp_path, check=False)
    assert_user_error(proc, 'the openvino backend runs an export of the '
                      'checkpoint', '--format openvino-int8')
    proc = run_tool([REPO_ROOT / 'tools' / 'test.py', learned_model.config,
                     exported_model.dir, '--backend', 'pytorch-compiled'],
                    cwd=tmp_path, check=False)
    assert_user_error(proc, 'is an export of tools/export.py; the '
                      'pytorch-compiled backend runs a checkpoint')
    proc = run_tool([REPO_ROOT / 'tools' / 'vis_cam.py', learned_model.config,
                     learned_model.checkpoint, learned_model.val_images[0],
                     '--out', tmp_path / 'cams', '--backend',
                     'onnxruntime'], cwd=tmp_path, check=False)
    assert_user_error(proc, 'the onnxruntime backend cannot explain '
                      'predictions: heat maps need the gradients')
    # OpenVINO that cannot run here (not installed, an unsupported CPU).
    import flower_mm.apis.backends as backends
    monkeypatch.setattr(backends, 'openvino_unavailable_reason',
                        lambda: 'OpenVINO is not installed')
    monkeypatch.setattr(sys, 'argv', [
        'infer.py', learned_model.config, str(exported_model.openvino),
        learned_model.val_images[0]])
    with pytest.raises(SystemExit) as exc:
        load_tool('infer').main()
    assert str(exc.value.code) == (
        f'error: "{exported_model.openvino}" needs OpenVINO, which cannot '
        'run here: OpenVINO is not installed.')


def test_openvino_is_usable_on_this_machine():
    """The suite's OpenVINO cases need it: requirements.txt installs it,
    and it runs on every x86-64 CPU the project supports."""
    assert openvino_unavailable_reason() is None
