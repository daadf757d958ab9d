"""One way to load a predictor: the model file decides what can run it,
``backend='auto'`` picks the fastest of those for the machine and the job.

The rule of ``auto`` (docs/speed.md), never slower than the eager
PyTorch or onnxruntime default, compile time included:

- a checkpoint: ``pytorch-compiled`` for a long-lived service or at least
  3,000 photos on a CPU with native bf16 (AVX512-BF16, AMX) and a C++
  compiler (:func:`~flower_mm.engine.runner.compile_pays`), else
  ``pytorch`` (eager);
- an export (a file, or the folder ``tools/export.py`` wrote): on a CPU
  with native bf16 where OpenVINO runs, ``openvino`` on the OpenVINO int8
  IR, else the OpenVINO float IR or ONNX file (bf16), else onnxruntime on
  the ONNX int8 file; elsewhere what ran before: onnxruntime on the ONNX
  int8 file, else the float one, else OpenVINO on an IR. An int8 model
  runs on the runtime its agreement check used.
"""
import glob
import os.path as osp
from dataclasses import dataclass
from typing import Optional

import torch
from mmengine.config import Config
from mmengine.logging import print_log

from flower_mm.deployment import (EXPORT_FORMATS, ExportedModelError,
                                  openvino_unavailable_reason,
                                  read_export_description)
from flower_mm.engine.runner import (compile_pays,
                                     compiler_unavailable_reason, loop_fp16)
from flower_mm.utils import (FlowerUserError, cpu_has_native_bf16,
                             resolve_inference_dtype)

from .exported_predictor import OnnxRuntimePredictor, OpenVINOPredictor
from .predictor import Predictor
from .pytorch_predictor import CompiledPyTorchPredictor, PyTorchPredictor

#: What ``--backend`` takes in every tool.
BACKENDS = ('auto', 'pytorch', 'pytorch-compiled', 'onnxruntime',
            'openvino')
PREDICTORS = {
    'pytorch': PyTorchPredictor,
    'pytorch-compiled': CompiledPyTorchPredictor,
    'onnxruntime': OnnxRuntimePredictor,
    'openvino': OpenVINOPredictor,
}
#: ``num_images`` of a service: it classifies photos for as long as it runs.
SERVICE = float('inf')
EXPORT_SUFFIXES = ('.onnx', '.xml')
BACKEND_HELP = (
    'what runs the model: auto (the fastest for this machine and job: '
    'docs/speed.md), pytorch (the checkpoint, eager), pytorch-compiled '
    '(the checkpoint, torch.compile), onnxruntime or openvino (an export '
    'of tools/export.py: its file or folder)')


class BackendError(FlowerUserError, ValueError):
    """A backend that cannot run this model here."""


@dataclass(frozen=True)
class BackendChoice:
    """What runs which file, and why (for the log and ``/model``)."""
    backend: str
    model_file: str
    reason: str


def is_export(model: str) -> bool:
    """Whether ``model`` names an export (file or folder), not a
    checkpoint."""
    return osp.isdir(model) or model.endswith(EXPORT_SUFFIXES)


def export_format(file: str) -> Optional[str]:
    """The ``tools/export.py --format`` that wrote ``file``, by its name."""
    for fmt, suffix in sorted(EXPORT_FORMATS.items(),
                              key=lambda item: -len(item[1])):
        if file.endswith(suffix):
            return fmt
    return None


def _exports_in(model: str) -> dict:
    """The exports a file or an export folder offers: {format: file}."""
    files = sorted(glob.glob(osp.join(model, '*'))) if osp.isdir(model) \
        else [model]
    found = {}
    for file in files:
        fmt = export_format(file)
        if fmt in (None, 'torchscript'):
            continue
        if fmt in found:
            raise ExportedModelError(
                f'Folder "{model}" holds several {fmt} models '
                f'({osp.basename(found[fmt])}, {osp.basename(file)}): pass '
                'the file instead.')
        found[fmt] = file
    return found


# (format, runtime) in order of preference, by what was measured fastest
# on CPUs with native bf16 with OpenVINO (docs/benchmarks.md), and by
# today's default elsewhere.
FAST_ORDER = [('openvino-int8', 'openvino'), ('openvino', 'openvino'),
              ('onnx', 'openvino'), ('onnx-int8', 'onnxruntime')]
DEFAULT_ORDER = [('onnx-int8', 'onnxruntime'), ('onnx', 'onnxruntime'),
                 ('openvino-int8', 'openvino'), ('openvino', 'openvino')]


def choose_backend(model: str,
                   backend: str = 'auto',
                   device: Optional[str] = None,
                   num_images: Optional[float] = None,
                   explain: bool = False) -> BackendChoice:
    """Which backend runs ``model`` (a checkpoint, an export file or
    folder), and which file of it.

    Args:
        backend: One of :data:`BACKENDS`.
        device: 'cpu', 'cuda'...; default: the GPU if any (exports: CPU).
        num_images: How many photos the caller will classify
            (:data:`SERVICE` for a service); None: few.
        explain: The caller needs gradients (class activation maps):
            PyTorch eager only.

    Raises:
        BackendError: the backend cannot run this model here.
    """
    if backend not in BACKENDS:
        raise BackendError(f'Unknown backend "{backend}"; use one of '
                           f'{", ".join(BACKENDS)}.')
    if explain and backend not in ('auto', 'pytorch'):
        raise BackendError(
            f'the {backend} backend cannot explain predictions: heat maps '
            'need the gradients of the PyTorch model; use --backend '
            'pytorch with a checkpoint.')
    if not is_export(model):
        return _choose_for_checkpoint(model, backend, device, num_images,
                                      explain)
    if backend.startswith('pytorch') or explain:
        raise BackendError(
            f'"{model}" is an export of tools/export.py; the '
            f'{"pytorch" if explain else backend} backend runs a '
            'checkpoint (.pth): pass the checkpoint'
            + (', or use --backend onnxruntime or openvino.'
               if not explain else '.'))
    if device is not None and torch.device(device).type != 'cpu':
        raise BackendError(
            f'Exports run on the CPU (onnxruntime, OpenVINO); got device '
            f'"{device}". Use the PyTorch checkpoint for a GPU.')
    exports = _exports_in(model)
    if not exports:
        raise ExportedModelError(
            f'"{model}" holds no .onnx or .xml model of tools/export.py.')
    no_openvino = openvino_unavailable_reason()
    if backend == 'auto':
        fast = no_openvino is None and cpu_has_native_bf16()
        order = FAST_ORDER if fast else DEFAULT_ORDER
        why = ('OpenVINO on a CPU with native bf16' if fast else
               'OpenVINO is not measured faster on a CPU without native '
               'bf16' if no_openvino is None else no_openvino)
    else:
        order = [(fmt, backend) for fmt in (
            'onnx-int8', 'onnx') if backend == 'onnxruntime'] + [
                (fmt, backend) for fmt in ('openvino-int8', 'openvino',
                                           'onnx') if backend == 'openvino']
        why = 'asked for'
    for fmt, runtime in order:
        if fmt in exports and (runtime != 'openvino' or not no_openvino):
            return BackendChoice(runtime, exports[fmt],
                                 f'{backend}: {why}' if backend == 'auto'
                                 else why)
    if no_openvino and any(fmt in exports for fmt, runtime in order
                           if runtime == 'openvino'):
        raise BackendError(f'"{model}" needs OpenVINO, which cannot run '
                           f'here: {no_openvino}.')
    raise BackendError(
        f'the {backend} backend cannot run "{model}" (found '
        f'{", ".join(osp.basename(f) for f in exports.values())}); '
        + ('onnxruntime runs .onnx files' if backend == 'onnxruntime' else
           'use another backend') + '.')


def _choose_for_checkpoint(checkpoint, backend, device, num_images,
                           explain) -> BackendChoice:
    if backend in ('onnxruntime', 'openvino'):
        raise BackendError(
            f'the {backend} backend runs an export of the checkpoint: '
            'write it with tools/export.py CONFIG CHECKPOINT --format '
            f'{"onnx-int8" if backend == "onnxruntime" else "openvino-int8"}'
            ' and pass the file or its folder instead of '
            f'"{checkpoint}".')
    device_type = torch.device(device).type if device else (
        'cuda' if torch.cuda.is_available() else 'cpu')
    if backend == 'pytorch-compiled':
        reason = compiler_unavailable_reason(device_type)
        if reason:
            raise BackendError(f'--backend pytorch-compiled: {reason}.')
        return BackendChoice(backend, checkpoint, 'asked for')
    if backend == 'pytorch':
        return BackendChoice(backend, checkpoint, 'asked for')
    if explain:
        return BackendChoice('pytorch', checkpoint,
                             'auto: heat maps need gradients')
    pays, why = compile_pays(device_type, num_images or 0, training=False)
    return BackendChoice('pytorch-compiled' if pays else 'pytorch',
                         checkpoint, f'auto: {why}')


def check_export_fits_config(cfg: Config, meta: dict,
                             model_file: str) -> None:
    """An export's classes against the config's ``num_classes``."""
    classes = meta['preprocess']['classes']
    num_classes = cfg.model.get('head', {}).get('num_classes')
    if isinstance(num_classes, int) and num_classes != len(classes):
        raise ExportedModelError(
            f'"{model_file}" was exported for {len(classes)} classes '
            f'({", ".join(classes)}) but the config\'s '
            f'model.head.num_classes is {num_classes}: pass the config the '
            'model was trained with.')


def export_float_precision(cfg: Config) -> str:
    """What OpenVINO's float layers compute in: the config's test
    precision rule (``test_cfg.fp16``: bf16 on CPUs with native bf16)."""
    dtype = resolve_inference_dtype(loop_fp16(cfg.get('test_cfg')), 'cpu')
    return 'bfloat16' if dtype is not None else 'float32'


def load_predictor(config,
                   model: str,
                   backend: str = 'auto',
                   device: Optional[str] = None,
                   num_images: Optional[float] = None,
                   explain: bool = False) -> Predictor:
    """The predictor for ``model`` (see :func:`choose_backend`), its choice
    logged in one line and kept in ``predictor.choice``.

    Args:
        config (str | Config): The config the model was trained with.
        model (str): A checkpoint, an export file or an export folder.
    """
    choice = choose_backend(model, backend, device, num_images, explain)
    cfg = Config.fromfile(config) if isinstance(config, str) else config
    if choice.backend.startswith('pytorch'):
        predictor = PREDICTORS[choice.backend](cfg, choice.model_file,
                                               device)
    else:
        check_export_fits_config(
            cfg, read_export_description(choice.model_file),
            choice.model_file)
        predictor = _load_export(choice, export_float_precision(cfg))
    predictor.choice = choice.reason
    log_backend(predictor.backend, predictor.model_file, predictor.choice)
    return predictor


def log_backend(backend: str, model_file: str, reason: str) -> None:
    """The one log line of what runs which file, and why."""
    print_log(f'Backend: {backend} ({osp.basename(model_file)}; {reason})',
              logger='current')


def _load_export(choice: BackendChoice, float_precision: str) -> Predictor:
    try:
        return PREDICTORS[choice.backend](
            choice.model_file, float_precision=float_precision)
    except RuntimeError as err:
        if not (choice.reason.startswith('auto') and
                choice.backend == 'openvino'
                and choice.model_file.endswith('.onnx')):
            raise
        # e.g. an int8 ONNX file of an older export, whose graph OpenVINO
        # has no kernels for: onnxruntime runs it.
        print_log(f'OpenVINO cannot run {choice.model_file} '
                  f'({str(err).splitlines()[-1][:200]}); onnxruntime runs '
                  'it instead', logger='current')
        return OnnxRuntimePredictor(choice.model_file)
