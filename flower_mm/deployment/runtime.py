"""What runs an export and what feeds it: onnxruntime and OpenVINO sessions,
the export's description, the test pipeline and the export's inputs.

The one leaf module of ``deployment/``: the exporter, the quantizers, the
exported-model classifier and the predictors of ``flower_mm.apis`` all take
these from here, and it imports none of them.
"""
import json
import os.path as osp
import platform
from typing import List, Optional, Sequence

import numpy as np
import torch
from mmengine.dataset import Compose
from mmengine.registry import DefaultScope

from ..utils.machine import usable_cores
from ..utils.user_errors import FlowerUserError

# The runtimes an export can run on, as ``--backend`` names them.
RUNTIMES = ('onnxruntime', 'openvino')


class ExportedModelError(FlowerUserError, ValueError):
    """A model file tools/export.py did not write (or not all of)."""


class RuntimeUnavailableError(FlowerUserError):
    """A backend that cannot run on this machine."""


def read_export_description(model_file: str) -> dict:
    """The JSON ``tools/export.py`` writes next to each export."""
    if not osp.isfile(model_file):
        raise ExportedModelError(f'Model "{model_file}" does not exist.')
    meta_file = model_file + '.json'
    if not osp.isfile(meta_file):
        raise ExportedModelError(
            f'"{meta_file}" is missing: it describes the preprocessing the '
            f'model needs; export with tools/export.py, which writes it next '
            f'to the model file.')
    with open(meta_file) as f:
        meta = json.load(f)
    if 'preprocess' not in meta:
        raise ExportedModelError(f'"{meta_file}" has no "preprocess" '
                                 'section; re-export with tools/export.py.')
    return meta


def is_int8(meta: dict) -> bool:
    """Whether an export's description says it was quantized to int8."""
    return str(meta.get('format', '')).endswith('-int8')


def build_pipeline(steps: Sequence[dict]) -> Compose:
    """MMPretrain transforms from config dicts (the test pipeline, or the
    steps of an export's ``preprocess``)."""
    from mmpretrain.registry import TRANSFORMS
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return Compose([TRANSFORMS.build(step) for step in steps])


def test_pipeline_steps(cfg) -> List[dict]:
    """The config's test pipeline, loading step included."""
    return list(cfg.test_dataloader.dataset.pipeline)


def export_pipeline(meta: dict) -> Compose:
    """The test pipeline an export recorded, for decoded images: its resize
    and crop steps, then ``PackInputs``."""
    steps = [{k: v for k, v in step.items() if k != 'details'}
             for step in meta['preprocess']['steps']]
    return build_pipeline(steps + [dict(type='PackInputs')])


def build_dataset_on_disk(dataset_cfg: dict):
    """The dataset as it is on disk: an export reads photos to check or
    calibrate on, it never downloads a data set (``prepare=False``)."""
    import inspect
    from mmpretrain.registry import DATASETS
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        dataset_cls = DATASETS.get(dataset_cfg['type'])
        if 'prepare' in inspect.signature(dataset_cls.__init__).parameters:
            dataset_cfg = dict(dataset_cfg, prepare=False)
        return DATASETS.build(dataset_cfg)


def deploy_inputs(batch: dict, to_rgb: bool) -> torch.Tensor:
    """The float tensor an export takes (RGB or BGR as it was exported,
    0-255, NCHW) from a collated batch of the test pipeline (BGR)."""
    inputs = batch['inputs']
    images = (torch.stack(inputs) if isinstance(inputs, (list, tuple))
              else inputs).float()
    if to_rgb:
        images = images[:, [2, 1, 0]]
    return images.contiguous()


class RuntimeSession:
    """An export loaded by a runtime: float32 images in, scores out.

    Attributes:
        runtime (str): 'onnxruntime' or 'openvino'.
        precision (str): what it computes in, e.g. 'int8' or 'bfloat16'.
    """
    runtime: str
    precision: str

    def run(self, images: np.ndarray) -> np.ndarray:
        """Softmax scores [N, classes] of float32 images [N, 3, H, W]."""
        raise NotImplementedError

    def describe(self) -> str:
        """E.g. 'onnxruntime (int8)' or 'openvino (bfloat16)'."""
        return f'{self.runtime} ({self.precision})'


class OnnxRuntimeSession(RuntimeSession):
    """An ONNX file on onnxruntime's CPU provider.

    Intra-op threads: the cores this process may use; one inter-op
    thread; idle threads sleep instead of spinning, so data-loading
    workers on the same cores are not starved between batches.
    """
    runtime = 'onnxruntime'

    def __init__(self, onnx_file: str, num_threads: Optional[int] = None,
                 int8: bool = False):
        import onnxruntime as ort
        options = ort.SessionOptions()
        options.intra_op_num_threads = num_threads or usable_cores()
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.add_session_config_entry('session.intra_op.allow_spinning',
                                         '0')
        self.session = ort.InferenceSession(
            onnx_file, options, providers=['CPUExecutionProvider'])
        self.input_name = self.session.get_inputs()[0].name
        self.precision = 'int8' if int8 else 'float32'

    def run(self, images: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: images})[0]


def openvino_unavailable_reason() -> Optional[str]:
    """Why OpenVINO cannot run here (not installed, no CPU plugin for this
    CPU), or None when it can."""
    try:
        import openvino
    except ImportError as err:
        return (f'OpenVINO is not installed ({err}); '
                'pip install -r requirements.txt installs it')
    try:
        devices = openvino.Core().available_devices
    except RuntimeError as err:  # e.g. a CPU below its minimum ISA
        return f'OpenVINO cannot start here: {err}'.splitlines()[0]
    if 'CPU' not in devices:
        return (f'OpenVINO has no CPU plugin for this '
                f'{platform.machine()} CPU (devices: {devices})')
    return None


def _precision_name(hint) -> str:
    """'bfloat16' or 'float32' for an OpenVINO precision (a Type)."""
    return 'bfloat16' if 'bf' in str(hint).lower() else 'float32'


def openvino_default_precision() -> str:
    """The float precision OpenVINO computes in here by default: bf16 on
    CPUs with native bf16, else f32."""
    import openvino
    return _precision_name(
        openvino.Core().get_property('CPU', 'INFERENCE_PRECISION_HINT'))


class OpenVINOSession(RuntimeSession):
    """An OpenVINO IR (``.xml`` + ``.bin``) or ONNX file on OpenVINO's CPU
    plugin, with all the process's cores on one batch at a time.

    Args:
        model_file: ``.xml`` or ``.onnx``.
        float_precision: 'float32' or 'bfloat16': what the layers that are
            not int8 compute in (OpenVINO's ``INFERENCE_PRECISION_HINT``);
            None: OpenVINO's default here (bf16 on CPUs with native bf16).
        num_threads: default: the cores this process may use.
        int8: the model was quantized (for :attr:`precision`).
    """
    runtime = 'openvino'

    def __init__(self, model_file: str,
                 float_precision: Optional[str] = None,
                 num_threads: Optional[int] = None, int8: bool = False):
        reason = openvino_unavailable_reason()
        if reason:
            raise RuntimeUnavailableError(reason + '.')
        import openvino
        core = openvino.Core()
        float_precision = float_precision or openvino_default_precision()
        config = {
            'INFERENCE_NUM_THREADS': num_threads or usable_cores(),
            'PERFORMANCE_HINT': 'LATENCY',
            'INFERENCE_PRECISION_HINT':
            'bf16' if float_precision == 'bfloat16' else 'f32',
        }
        self.compiled = core.compile_model(core.read_model(model_file),
                                           'CPU', config)
        self.request = self.compiled.create_infer_request()
        # What it computes in: a CPU without native bf16 keeps f32.
        used = _precision_name(
            self.compiled.get_property('INFERENCE_PRECISION_HINT'))
        self.precision = ('int8' + (', bfloat16 elsewhere' if
                                    used == 'bfloat16' else '')
                          if int8 else used)

    def run(self, images: np.ndarray) -> np.ndarray:
        # Copied out: the request reuses its output buffer.
        return self.request.infer({0: images})[0].copy()


def open_session(model_file: str, runtime: str,
                 float_precision: Optional[str] = None,
                 num_threads: Optional[int] = None) -> RuntimeSession:
    """``model_file`` (an export with its JSON) on ``runtime``."""
    meta = read_export_description(model_file)
    int8 = is_int8(meta)
    if runtime == 'onnxruntime':
        if not model_file.endswith('.onnx'):
            raise ExportedModelError(
                f'onnxruntime runs .onnx files, not "{model_file}"; use the '
                'openvino backend for an OpenVINO IR.')
        return OnnxRuntimeSession(model_file, num_threads, int8)
    if runtime == 'openvino':
        return OpenVINOSession(model_file, float_precision, num_threads,
                               int8)
    raise ValueError(f'Unknown runtime "{runtime}"; use one of {RUNTIMES}.')
