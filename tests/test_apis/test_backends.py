"""flower_mm.apis.choose_backend and load_predictor: which backend runs
which model file, ``auto``'s choice in each case it tells apart, and the
refusals, each as one user error."""
import logging
import re

import pytest

import flower_mm.apis.backends as backends
from flower_mm.apis import (SERVICE, BackendError, choose_backend,
                            load_predictor)
from flower_mm.deployment import ExportedModelError


@pytest.fixture
def machine(monkeypatch):
    """Set what choose_backend sees of the machine: native bf16, OpenVINO,
    a C++ compiler."""
    import flower_mm.engine.runner.torch_compile as torch_compile

    def set_machine(bf16=True, openvino=True, compiler=True):
        for module in (backends, torch_compile):
            monkeypatch.setattr(module, 'cpu_has_native_bf16', lambda: bf16)
        monkeypatch.setattr(
            backends, 'openvino_unavailable_reason',
            lambda: None if openvino else 'OpenVINO is not installed')
        no_compiler = None if compiler else 'torch.compile needs a C++ ' \
            'compiler on the CPU'
        for module in (backends, torch_compile):
            monkeypatch.setattr(module, 'compiler_unavailable_reason',
                                lambda device_type='cpu': no_compiler)

    return set_machine


@pytest.fixture
def export_dir(tmp_path):
    """A folder as tools/export.py writes it, every format (empty files:
    the choice reads names only)."""
    folder = tmp_path / 'export'
    folder.mkdir()
    for suffix in ('.onnx', '.int8.onnx', '.xml', '.int8.xml',
                   '.torchscript.pt'):
        (folder / f'resnet50_flowers{suffix}').write_bytes(b'')
    return folder


def choice(model, backend='auto', **kwargs):
    chosen = choose_backend(str(model), backend, **kwargs)
    name = chosen.model_file.rsplit('/', 1)[-1]
    return chosen.backend, name, chosen.reason


def test_auto_on_a_checkpoint_compiles_for_many_photos_or_a_service(
        machine):
    machine()
    assert choice('ckpt.pth', num_images=10)[:2] == ('pytorch', 'ckpt.pth')
    assert choice('ckpt.pth')[0] == 'pytorch'  # unknown: few
    assert choice('ckpt.pth', num_images=2999)[2] == (
        'auto: 2,999 inference images, fewer than the 3,000 that repay '
        'compiling')
    assert choice('ckpt.pth', num_images=3000) == (
        'pytorch-compiled', 'ckpt.pth',
        'auto: 3,000 inference images on a CPU with native bf16')
    assert choice('ckpt.pth', num_images=SERVICE) == (
        'pytorch-compiled', 'ckpt.pth',
        'auto: a long-lived service on a CPU with native bf16')
    # Not measured faster elsewhere; no compiler: eager, never an error.
    machine(bf16=False)
    assert choice('ckpt.pth', num_images=SERVICE) == (
        'pytorch', 'ckpt.pth',
        'auto: not measured faster on a CPU without native bf16')
    machine(compiler=False)
    assert choice('ckpt.pth', num_images=SERVICE)[::2] == (
        'pytorch', 'auto: torch.compile needs a C++ compiler on the CPU')
    assert choice('ckpt.pth', device='cuda', num_images=SERVICE)[::2] == (
        'pytorch', 'auto: not measured faster on a GPU')
    # Explanations need the eager model's gradients.
    machine()
    assert choice('ckpt.pth', num_images=SERVICE, explain=True)[0] == \
        'pytorch'


def test_auto_on_an_export_prefers_openvino_where_measured_faster(
        machine, export_dir, tmp_path):
    machine(bf16=True, openvino=True)
    assert choice(export_dir) == (
        'openvino', 'resnet50_flowers.int8.xml',
        'auto: OpenVINO on a CPU with native bf16')
    (export_dir / 'resnet50_flowers.int8.xml').unlink()
    assert choice(export_dir)[:2] == ('openvino', 'resnet50_flowers.xml')
    # A float ONNX file runs on OpenVINO in bf16; an int8 one on the
    # runtime its agreement was checked on.
    assert choice(export_dir / 'resnet50_flowers.onnx')[:2] == (
        'openvino', 'resnet50_flowers.onnx')
    assert choice(export_dir / 'resnet50_flowers.int8.onnx')[:2] == (
        'onnxruntime', 'resnet50_flowers.int8.onnx')
    # Elsewhere, what ran before: onnxruntime, int8 first.
    machine(bf16=False, openvino=True)
    assert choice(export_dir) == (
        'onnxruntime', 'resnet50_flowers.int8.onnx',
        'auto: OpenVINO is not measured faster on a CPU without native bf16')
    machine(bf16=True, openvino=False)
    assert choice(export_dir) == ('onnxruntime', 'resnet50_flowers.int8.onnx',
                                  'auto: OpenVINO is not installed')
    # An IR alone needs OpenVINO.
    machine(bf16=False, openvino=True)
    assert choice(export_dir / 'resnet50_flowers.xml')[:2] == (
        'openvino', 'resnet50_flowers.xml')
    machine(openvino=False)
    with pytest.raises(BackendError, match='needs OpenVINO, which cannot '
                       'run here: OpenVINO is not installed'):
        choice(export_dir / 'resnet50_flowers.xml')


def test_asked_for_backends_take_their_own_files(machine, export_dir):
    machine()
    assert choice(export_dir, 'onnxruntime')[:2] == (
        'onnxruntime', 'resnet50_flowers.int8.onnx')
    assert choice(export_dir, 'openvino')[:2] == (
        'openvino', 'resnet50_flowers.int8.xml')
    assert choice(export_dir / 'resnet50_flowers.onnx', 'onnxruntime')[:2] \
        == ('onnxruntime', 'resnet50_flowers.onnx')
    assert choice('ckpt.pth', 'pytorch-compiled', num_images=1) == (
        'pytorch-compiled', 'ckpt.pth', 'asked for')


@pytest.mark.parametrize('model, backend, kwargs, message', [
    ('ckpt.pth', 'onnxruntime', {}, 'the onnxruntime backend runs an export '
     'of the checkpoint: write it with tools/export.py CONFIG CHECKPOINT '
     '--format onnx-int8'),
    ('ckpt.pth', 'openvino', {}, '--format openvino-int8'),
    ('{dir}', 'pytorch', {}, 'is an export of tools/export.py; the pytorch '
     'backend runs a checkpoint (.pth)'),
    ('{dir}/resnet50_flowers.xml', 'onnxruntime', {}, 'the onnxruntime '
     'backend cannot run'),
    ('{dir}', 'auto', dict(device='cuda'), 'Exports run on the CPU'),
    ('ckpt.pth', 'onnxruntime', dict(explain=True), 'the onnxruntime '
     'backend cannot explain predictions: heat maps need the gradients'),
    ('{dir}', 'auto', dict(explain=True), 'the pytorch backend runs a '
     'checkpoint'),
    ('ckpt.pth', 'tensorrt', {}, 'Unknown backend "tensorrt"'),
])
def test_backends_that_cannot_run_the_model_are_user_errors(
        machine, export_dir, model, backend, kwargs, message):
    machine()
    with pytest.raises(BackendError, match=re.escape(message)):
        choose_backend(model.format(dir=export_dir), backend, **kwargs)


def test_compiled_without_a_compiler_is_a_user_error(machine):
    machine(compiler=False)
    with pytest.raises(BackendError, match='--backend pytorch-compiled: '
                       'torch.compile needs a C\\+\\+ compiler'):
        choose_backend('ckpt.pth', 'pytorch-compiled')


def test_export_folders_that_say_nothing_or_too_much(machine, tmp_path):
    machine()
    empty = tmp_path / 'empty'
    empty.mkdir()
    with pytest.raises(ExportedModelError, match='holds no .onnx or .xml'):
        choose_backend(str(empty))
    (empty / 'a.onnx').write_bytes(b'')
    (empty / 'b.onnx').write_bytes(b'')
    with pytest.raises(ExportedModelError, match='several onnx models '
                       r'\(a.onnx, b.onnx\): pass the file instead'):
        choose_backend(str(empty))


def test_auto_falls_back_to_onnxruntime_where_openvino_cannot_run(
        machine, learned_model, exported_model):
    """The export folder of the session's model, on a machine whose
    OpenVINO does not work: onnxruntime answers, one log line says why."""
    from mmengine.logging import MMLogger
    machine(bf16=True, openvino=False)
    logger, logged = MMLogger.get_current_instance(), []
    handler = logging.Handler()
    handler.emit = lambda record: logged.append(record.getMessage())
    logger.addHandler(handler)
    try:
        predictor = load_predictor(learned_model.config,
                                   str(exported_model.dir),
                                   num_images=SERVICE)
    finally:
        logger.removeHandler(handler)
    assert (predictor.backend, predictor.model_file) == (
        'onnxruntime', str(exported_model.int8))
    assert predictor.choice == 'auto: OpenVINO is not installed'
    assert [line for line in logged if line.startswith('Backend: ')] == [
        'Backend: onnxruntime (resnet50_flowers.int8.onnx; auto: OpenVINO '
        'is not installed)']
