"""Static int8 quantization of an export, calibrated and verified.

Two quantizers, each the runtime's own tool:

- ``onnx-int8``: onnxruntime's ``quantize_static`` on the float32 ONNX
  export: QDQ format, uint8 activations and per-channel int8 weights
  (U8S8, the combination onnxruntime documents as fast on x86-64; with int8
  activations its CPU provider has no int8 ``Add``, so the residual
  additions and the 20 convolutions feeding them stayed float and the model
  ran slower than float32).
- ``openvino-int8``: NNCF's ``nncf.quantize`` on the OpenVINO model. Where
  its defaults agree with float32 on fewer than the required share of
  control photos (training photos other than the calibration ones),
  ``nncf.quantize_with_accuracy_control`` keeps the layers that cost
  agreement in float.

The activation ranges come from photos of the training split run through
the config's test pipeline; the result is then compared with PyTorch
float32 on photos of the validation split, and refused when the two
disagree too often (:func:`verify_agreement`).
"""
import os.path as osp
import tempfile
from typing import Callable, Iterator, List, Optional, Sequence

import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.logging import print_log
from mmengine.registry import DefaultScope

from .runtime import (RuntimeSession, build_dataset_on_disk, build_pipeline,
                      deploy_inputs, test_pipeline_steps)

DEFAULT_CALIB_IMAGES = 256
DEFAULT_VERIFY_IMAGES = 500
DEFAULT_MIN_AGREEMENT = 0.99
CALIB_SEED = 0
# Training photos (another seeded choice than the calibration's) on which
# openvino-int8's accuracy control measures agreement with float32.
CONTROL_SEED = 1
# Images per onnxruntime/PyTorch run while calibrating and verifying. The
# calibrator keeps only each tensor's min and max per run, so memory stays
# that of one batch.
BATCH = 8
ONNX_INT8_METHOD = ('onnxruntime quantize_static, QDQ, MinMax, uint8 '
                    'activations (residual additions included), per-channel '
                    'int8 weights, softmax in float')
OPENVINO_INT8_METHOD = ('NNCF quantize, performance preset, per-channel '
                        'int8 weights')


class QuantizationAgreementError(RuntimeError):
    """The int8 model's top-1 agrees with float32 PyTorch too rarely."""


Sample = Callable[[], dict]


def split_samples(cfg: Config, loader: str, num_images: int,
                  seed: int = CALIB_SEED) -> List[Sample]:
    """A seeded choice of ``num_images`` photos of a loader's dataset, each
    as a function loading it through the config's *test* pipeline."""
    dataset = build_dataset_on_disk(
        dict(cfg[loader].dataset, pipeline=test_pipeline_steps(cfg)))
    count = min(num_images, len(dataset))
    chosen = np.random.default_rng(seed).choice(
        len(dataset), count, replace=False)
    return [lambda i=int(i): dataset[i] for i in sorted(chosen)]


def file_samples(cfg: Config, paths: Sequence[str]) -> List[Sample]:
    """Image files through the config's test pipeline, one function each."""
    pipeline = build_pipeline(test_pipeline_steps(cfg))
    return [lambda p=p: pipeline(dict(img_path=p)) for p in paths]


def _batches(samples: Sequence[Sample],
             size: int = BATCH) -> Iterator[dict]:
    for start in range(0, len(samples), size):
        with DefaultScope.overwrite_default_scope('mmpretrain'):
            yield pseudo_collate(
                [load() for load in samples[start:start + size]])


def _export_inputs(samples: Sequence[Sample], to_rgb: bool,
                   size: int = BATCH) -> Iterator[np.ndarray]:
    """The exports' float32 inputs of ``samples``, ``size`` at a time,
    loaded lazily: a few hundred photos never sit in memory at once."""
    for batch in _batches(samples, size):
        yield deploy_inputs(batch, to_rgb).numpy()


class PipelineCalibrationReader:
    """onnxruntime's CalibrationDataReader over photos, batch by batch."""

    def __init__(self, samples: Sequence[Sample], to_rgb: bool):
        self._inputs = _export_inputs(samples, to_rgb)

    def get_next(self) -> Optional[dict]:
        images = next(self._inputs, None)
        return None if images is None else {'input': images}

    def __iter__(self):  # onnxruntime's base class protocol
        return self

    def __next__(self):
        item = self.get_next()
        if item is None:
            raise StopIteration
        return item


def quantize_onnx(fp32_file: str, out_file: str,
                  calib_samples: Sequence[Sample], to_rgb: bool) -> str:
    """Write the int8 (QDQ, U8S8, per-channel weights) ``fp32_file``.

    Softmax stays float: int8 would round every probability to 1/256.
    """
    import onnx
    from onnxruntime.quantization import (CalibrationMethod, QuantFormat,
                                          QuantType, quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    softmax = [n.name for n in onnx.load(fp32_file).graph.node
               if n.op_type == 'Softmax']
    with tempfile.TemporaryDirectory() as tmp:
        # onnxruntime's recommended preprocessing: shapes and BN folding.
        prepared = osp.join(tmp, 'prepared.onnx')
        quant_pre_process(fp32_file, prepared)
        quantize_static(
            prepared,
            out_file,
            PipelineCalibrationReader(calib_samples, to_rgb),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            # uint8 activations: onnxruntime's x86 kernels (and its int8
            # Add, QLinearAdd) are built for U8S8.
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            nodes_to_exclude=softmax)
    return out_file


def _top1_agreement(compiled, items) -> tuple:
    """NNCF's validation function: the share of ``(images, float32 top-1)``
    items whose top-1 the model keeps, and the per-image values."""
    per_image = []
    for images, reference in items:
        scores = compiled(images)[0]
        per_image += (np.asarray(scores).argmax(1) == reference).tolist()
    return float(np.mean(per_image)), [float(v) for v in per_image]


def quantize_openvino(fp32_model, out_file: str,
                      calib_samples: Sequence[Sample],
                      control_samples: Sequence[Sample], to_rgb: bool,
                      min_agreement: float) -> dict:
    """Write the int8 OpenVINO IR of ``fp32_model`` (an ``openvino.Model``)
    quantized by NNCF; return how (for the export's JSON).

    The defaults first; where they agree with float32 on fewer than
    ``min_agreement`` of ``control_samples``, NNCF's accuracy control
    keeps the layers that cost agreement in float.
    """
    import nncf
    import openvino

    calib = nncf.Dataset(list(_export_inputs(calib_samples, to_rgb, 1)))
    quantized = nncf.quantize(fp32_model, calib,
                              subset_size=len(calib_samples))
    method = OPENVINO_INT8_METHOD
    core = openvino.Core()
    reference = core.compile_model(fp32_model, 'CPU', {
        'INFERENCE_PRECISION_HINT': 'f32'})
    # One photo per item: NNCF ranks layers by the items they change.
    control = [(images, np.asarray(reference(images)[0]).argmax(1))
               for images in _export_inputs(control_samples, to_rgb, 1)]
    agreement, _ = _top1_agreement(
        core.compile_model(quantized, 'CPU',
                           {'INFERENCE_PRECISION_HINT': 'f32'}), control)
    if agreement < min_agreement:
        print_log(
            f'openvino-int8: NNCF\'s defaults agree with float32 on '
            f'{100 * agreement:.1f} % of {len(control)} control photos; '
            'quantizing with accuracy control',
            logger='current')
        quantized = nncf.quantize_with_accuracy_control(
            fp32_model, calib, nncf.Dataset(control, lambda item: item[0]),
            _top1_agreement,
            max_drop=1 - min_agreement,
            drop_type=nncf.DropType.ABSOLUTE,
            subset_size=len(calib_samples))
        method += (', accuracy control (layers that cost top-1 agreement '
                   f'with float32 beyond {100 * (1 - min_agreement):g} % '
                   'kept in float)')
    openvino.save_model(quantized, out_file, compress_to_fp16=False)
    return dict(method=method, control_images=len(control),
                control_agreement_defaults=agreement)


def verify_agreement(model, session: RuntimeSession,
                     samples: Sequence[Sample], min_agreement: float,
                     to_rgb: bool) -> dict:
    """Top-1 agreement, accuracies and score differences: int8 vs fp32.

    Float32 is MMPretrain's own inference (``model.test_step``).
    """
    ref_scores, int8_scores, labels = [], [], []
    for batch in _batches(samples):
        with torch.no_grad():
            outputs = model.test_step(batch)
        ref_scores.append(torch.stack([o.pred_score for o in outputs]))
        labels += [int(o.gt_label[0]) for o in outputs]
        int8_scores.append(torch.from_numpy(
            session.run(deploy_inputs(batch, to_rgb).numpy())))
    ref, q = torch.cat(ref_scores).float(), torch.cat(int8_scores).float()
    labels = torch.tensor(labels)
    agree = (ref.argmax(1) == q.argmax(1)).float().mean().item()
    return {
        'reference': 'PyTorch float32, MMPretrain model.test_step',
        'runtime': session.describe(),
        'num_images': len(labels),
        'top1_agreement': agree,
        'top1_accuracy_int8': (q.argmax(1) == labels).float().mean().item(),
        'top1_accuracy_fp32': (ref.argmax(1) == labels).float().mean().item(),
        'max_abs_diff_scores': (ref - q).abs().max().item(),
        'min_agreement': min_agreement,
        'passed': agree >= min_agreement,
    }
