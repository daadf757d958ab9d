"""tools/export.py's runtime formats on the session's learned model: the
OpenVINO IR matches PyTorch, both int8 models agree with it, and the ONNX
int8 model runs every convolution and residual addition in int8 on
onnxruntime (what makes it faster than float32); where NNCF's defaults fall
short, accuracy control."""
import collections
import json

import onnx
import onnxruntime as ort
from conftest import REPO_ROOT, assert_user_error, run_tool


def meta_of(path):
    with open(f'{path}.json') as f:
        return json.load(f)


def test_openvino_export_matches_pytorch(exported_model):
    meta = meta_of(exported_model.openvino)
    assert meta['format'] == 'openvino'
    assert meta['preprocess'] == meta_of(exported_model.onnx)['preprocess']
    parity = meta['parity']
    assert parity['passed'] and parity['num_images'] == 3
    assert parity['max_abs_diff_scores'] <= parity['tolerance'] == 1e-4
    assert f'openvino: {exported_model.openvino} (+ .json); max |score ' \
        'difference|' in exported_model.stdout
    # weights in float32, not the fp16 save_model writes by default
    assert exported_model.openvino.with_suffix('.bin').stat().st_size > \
        0.9 * exported_model.onnx.stat().st_size


def test_both_int8_exports_agree_with_pytorch_on_every_val_photo(
        exported_model):
    for path, method in ((exported_model.int8, 'uint8 activations'),
                         (exported_model.openvino_int8, 'NNCF quantize')):
        meta = meta_of(path)
        assert method in meta['calibration']['method']
        assert meta['calibration']['num_images'] == 4
        agreement = meta['agreement']
        assert agreement['num_images'] == 20
        assert agreement['top1_agreement'] >= 0.99 and agreement['passed']
    assert meta['agreement']['runtime'] == 'openvino (int8)'
    assert meta['calibration']['control_images'] == 4
    assert (f'openvino-int8: {exported_model.openvino_int8} (+ .json); '
            'top-1 agreement with PyTorch 100.0 % >= 99 %'
            ) in exported_model.stdout


def test_onnx_int8_runs_every_convolution_in_int8(exported_model, tmp_path):
    """With int8 activations (S8S8) onnxruntime has no int8 Add: the 16
    residual additions and the 20 convolutions feeding them stayed float,
    and the model ran slower than float32."""
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / 'optimized.onnx')
    ort.InferenceSession(str(exported_model.int8), options,
                         providers=['CPUExecutionProvider'])
    ops = collections.Counter(
        node.op_type for node in onnx.load(
            options.optimized_model_filepath).graph.node)
    assert ops['Conv'] == 0 and ops['Add'] == 0, ops
    assert ops['QLinearConv'] == 53 and ops['QLinearAdd'] == 16, ops


def test_openvino_int8_tries_accuracy_control_then_refuses(
        learned_model, photo_sensitive_checkpoint, flower_data_root,
        constant_images, tmp_path):
    """Calibrated on three constant images, NNCF's defaults disagree with
    float32 on some control photos (training photos): the export quantizes
    again with accuracy control, says so, and is still refused where the
    result agrees too rarely on the validation photos (colour blobs, whose
    top-1 this model varies on)."""
    out_dir = tmp_path / 'export'
    int8 = out_dir / 'resnet50_flowers.int8.xml'
    proc = run_tool([
        REPO_ROOT / 'tools' / 'export.py', learned_model.config,
        photo_sensitive_checkpoint, '--format', 'openvino-int8', '--out',
        out_dir, '--calib-dir', constant_images, '--num-check-images', '2',
        '--cfg-options', *learned_model.cfg_options,
        f'val_dataloader.dataset.data_root={flower_data_root}'
    ], cwd=tmp_path, check=False)
    assert_user_error(proc, f'error: {int8}: top-1 agrees with PyTorch '
                      'float32 on', 'of 15 validation photos, below the '
                      'required 99 %; do not deploy it')
    meta = meta_of(int8)
    calibration = meta['calibration']
    assert calibration['num_images'] == 3
    assert calibration['control_images'] == 40  # the training photos
    assert calibration['control_agreement_defaults'] < 0.99
    assert calibration['method'].endswith(
        'accuracy control (layers that cost top-1 agreement with float32 '
        'beyond 1 % kept in float)')
    assert ("NNCF's defaults agree with float32 on "
            f"{100 * calibration['control_agreement_defaults']:.1f} % of 40 "
            'control photos; quantizing with accuracy control'
            ) in proc.stdout + proc.stderr
    agreement = meta['agreement']
    assert not agreement['passed'] and agreement['top1_agreement'] < 0.99
