"""Export a trained classifier to TorchScript, ONNX or OpenVINO (float32 or
int8), checked against PyTorch.

The exported model takes what a deployer can produce with any image
library and does the rest itself::

    input   float32 [N, 3, H, W], RGB (the config's channel order), 0-255,
            after the test pipeline's resize and crop
    output  float32 [N, num_classes], softmax scores in class order

Normalisation (mean/std) and the channel order live in the model's
``data_preprocessor`` in MMPretrain; the export folds the normalisation
into the graph, so a deployer reproduces only the geometry (resize, crop),
which the JSON written next to each export describes.
"""
import json
import os
import os.path as osp
import tempfile
import warnings
from typing import List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.logging import print_log
from mmengine.registry import DefaultScope

from ..utils.num_classes import load_trained_classifier
from .quantize import (CALIB_SEED, CONTROL_SEED, DEFAULT_CALIB_IMAGES,
                       DEFAULT_MIN_AGREEMENT, DEFAULT_VERIFY_IMAGES,
                       ONNX_INT8_METHOD, QuantizationAgreementError,
                       file_samples, quantize_onnx, quantize_openvino,
                       split_samples, verify_agreement)
from .runtime import (OnnxRuntimeSession, OpenVINOSession,
                      RuntimeUnavailableError, build_dataset_on_disk,
                      build_pipeline, deploy_inputs,
                      openvino_unavailable_reason, test_pipeline_steps)

EXPORT_FORMATS = {
    'torchscript': '.torchscript.pt',
    'onnx': '.onnx',
    'onnx-int8': '.int8.onnx',
    'openvino': '.xml',
    'openvino-int8': '.int8.xml',
}
INT8_FORMATS = ('onnx-int8', 'openvino-int8')
# Float32 CPU inference of the same graph differs by about 1e-6; 1e-4 on
# probabilities flags real divergence (wrong preprocessing, ops) only.
DEFAULT_TOLERANCE = 1e-4
ONNX_OPSET = 17


class ExportParityError(RuntimeError):
    """An exported model's outputs differ from PyTorch's."""


class ExportableClassifier(torch.nn.Module):
    """What every export holds: an MMPretrain ``ImageClassifier`` taking
    float RGB 0-255 images and returning softmax scores.

    Args:
        model: The classifier, with its ``ClsDataPreprocessor``.
    """

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model
        preprocessor = model.data_preprocessor
        if getattr(preprocessor, '_enable_normalize', False):
            mean, std = preprocessor.mean, preprocessor.std
        else:
            mean, std = torch.zeros(3, 1, 1), torch.ones(3, 1, 1)
        self.register_buffer('mean', mean.detach().clone().view(1, -1, 1, 1))
        self.register_buffer('std', std.detach().clone().view(1, -1, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        logits = self.model((images - self.mean) / self.std, mode='tensor')
        return F.softmax(logits, dim=1)


def to_rgb(model) -> bool:
    """Whether the model's data preprocessor turns BGR batches to RGB."""
    return bool(getattr(model.data_preprocessor, 'to_rgb', False))


def load_check_batch(cfg: Config,
                     num_images: int = 8,
                     image_paths: Optional[Sequence[str]] = None) -> dict:
    """Real images through the config's test pipeline, collated.

    Taken from ``image_paths`` when given, else the first ``num_images``
    of the config's test dataset.
    """
    if image_paths:
        pipeline = build_pipeline(test_pipeline_steps(cfg))
        samples = [pipeline(dict(img_path=p)) for p in image_paths]
    else:
        dataset = build_dataset_on_disk(cfg.test_dataloader.dataset)
        with DefaultScope.overwrite_default_scope('mmpretrain'):
            samples = [
                dataset[i] for i in range(min(num_images, len(dataset)))
            ]
    if not samples:
        raise ValueError('No images to check the export with; pass some.')
    shapes = {tuple(s['inputs'].shape) for s in samples}
    if len(shapes) > 1:
        raise ValueError(
            f'The test pipeline yields images of several sizes {shapes}; an '
            'export needs a fixed size: end test_dataloader.dataset.pipeline '
            'with a CenterCrop or a fixed-size Resize.')
    return pseudo_collate(samples)


def export_torchscript(module: torch.nn.Module, example: torch.Tensor,
                       out_file: str) -> str:
    # torch 2.14 deprecates TorchScript in favour of torch.export; it is
    # still what C++ (libtorch) and mobile runtimes load, so keep it quiet.
    # The parity check below replaces trace's own (slower) output check.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter('ignore', FutureWarning)
        traced = torch.jit.trace(module, example, check_trace=False)
    traced.save(out_file)
    return out_file


def export_onnx(module: torch.nn.Module, example: torch.Tensor,
                out_file: str) -> str:
    # The TorchScript-based exporter (dynamo=False) needs only `onnx`;
    # torch.export's needs `onnxscript` too and brings nothing for a CNN.
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', DeprecationWarning)
        torch.onnx.export(
            module, (example, ),
            out_file,
            dynamo=False,
            input_names=['input'],
            output_names=['scores'],
            dynamic_axes={
                'input': {
                    0: 'batch'
                },
                'scores': {
                    0: 'batch'
                }
            },
            opset_version=ONNX_OPSET)
    import onnx
    onnx.checker.check_model(out_file)
    return out_file


def require_openvino() -> None:
    reason = openvino_unavailable_reason()
    if reason:
        raise RuntimeUnavailableError(
            f'cannot export to OpenVINO: {reason}.')


def export_openvino(onnx_file: str, out_file: str) -> str:
    """The OpenVINO IR (``.xml`` + ``.bin``) of an ONNX export, by
    OpenVINO's own converter; weights kept in float32 (``save_model``
    would halve them to fp16 otherwise)."""
    import openvino
    openvino.save_model(openvino.convert_model(onnx_file), out_file,
                        compress_to_fp16=False)
    return out_file


def run_export(fmt: str, export_file: str,
               images: torch.Tensor) -> np.ndarray:
    """Load an export back, as a deployer would, and run it in float32."""
    if fmt == 'torchscript':
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', FutureWarning)
            loaded = torch.jit.load(export_file, map_location='cpu')
        with torch.no_grad():
            return loaded(images).numpy()
    session = (OnnxRuntimeSession(export_file) if fmt == 'onnx' else
               OpenVINOSession(export_file, float_precision='float32'))
    return session.run(images.numpy())


def preprocessing_description(cfg: Config, model, input_size,
                              classes: List[str]) -> dict:
    """What a deployer must do to a photo before the exported model."""
    from mmpretrain.registry import TRANSFORMS
    steps = []
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        for t in test_pipeline_steps(cfg):
            if 'LoadImage' in t['type'] or t['type'] == 'PackInputs':
                continue
            steps.append(dict(t, details=repr(TRANSFORMS.build(t))))
    preprocessor = model.data_preprocessor
    normalise = getattr(preprocessor, '_enable_normalize', False)
    return {
        'decode': 'read the photo as 8-bit, 3 channels (grayscale '
        'replicated, transparency flattened onto white), EXIF-rotated',
        'steps': steps,
        'input_size': {'height': input_size[0], 'width': input_size[1]},
        'channel_order': 'RGB' if to_rgb(model) else 'BGR',
        'layout': 'NCHW',
        'dtype': 'float32',
        'value_range': [0, 255],
        'mean': _rounded(preprocessor.mean) if normalise else None,
        'std': _rounded(preprocessor.std) if normalise else None,
        'normalisation': 'inside the exported model: feed 0-255 values, do '
        'not subtract mean or divide by std yourself',
        'classes': classes,
    }


def export_classifier(config,
                      checkpoint: str,
                      formats: Sequence[str],
                      out_dir: str,
                      name: Optional[str] = None,
                      num_check_images: int = 8,
                      check_image_paths: Optional[Sequence[str]] = None,
                      tolerance: float = DEFAULT_TOLERANCE,
                      calib_images: int = DEFAULT_CALIB_IMAGES,
                      calib_image_paths: Optional[Sequence[str]] = None,
                      verify_images: int = DEFAULT_VERIFY_IMAGES,
                      min_agreement: float = DEFAULT_MIN_AGREEMENT
                      ) -> List[dict]:
    """Export ``checkpoint`` in each format and check it against PyTorch.

    The reference is MMPretrain's own inference (``model.test_step``: data
    preprocessor, network, softmax) on real images through the test
    pipeline. Each float export is loaded back and run on the same images
    in one batch larger than the traced one, which also checks the dynamic
    batch axis. The int8 formats quantize the float32 export, calibrated
    on ``calib_images`` photos of the training split (or
    ``calib_image_paths``), and check top-1 agreement with PyTorch on
    ``verify_images`` photos of the validation split instead (see
    :mod:`.quantize`). A JSON describing the preprocessing and the check is
    written next to each export.

    Returns:
        list[dict]: the JSON written for each format.

    Raises:
        ExportParityError: a float export's scores differ from PyTorch's by
            more than ``tolerance`` (its files and JSON are still written).
        QuantizationAgreementError: an int8 model's top-1 agrees with
            PyTorch's on fewer than ``min_agreement`` of the photos (its
            files and JSON are still written).
        RuntimeUnavailableError: an OpenVINO format where OpenVINO cannot
            run.
    """
    cfg = config if isinstance(config, Config) else Config.fromfile(config)
    unknown = [f for f in formats if f not in EXPORT_FORMATS]
    if unknown:
        raise ValueError(f'Unknown export formats {unknown}; choose from '
                         f'{list(EXPORT_FORMATS)}.')
    if any(f.startswith('openvino') for f in formats):
        require_openvino()
    name = name or osp.splitext(osp.basename(cfg.filename or 'model'))[0]
    model, classes = load_trained_classifier(cfg, checkpoint)

    batch = load_check_batch(cfg, num_check_images, check_image_paths)
    with torch.no_grad():
        reference = torch.stack(
            [s.pred_score for s in model.test_step(batch)]).numpy()
    images = deploy_inputs(batch, to_rgb(model))
    exportable = ExportableClassifier(model).eval()
    # Trace on fewer images than the check uses, so the check exercises a
    # batch size the export never saw.
    example = images[:max(1, min(2, len(images) - 1))]
    os.makedirs(out_dir, exist_ok=True)

    def path(fmt: str) -> str:
        return osp.join(out_dir, name + EXPORT_FORMATS[fmt])

    def describe(fmt: str, export_file: str, check: dict) -> dict:
        meta = {
            'format': fmt,
            'file': osp.basename(export_file),
            'config': cfg.filename,
            'checkpoint': checkpoint,
            'input': {
                'name': 'input',
                'shape': ['batch', 3, *images.shape[2:]],
            },
            'output': {
                'name': 'scores',
                'shape': ['batch', len(classes)],
                'meaning': 'softmax probability per class, in the order '
                'of preprocess.classes',
            },
            'preprocess': preprocessing_description(cfg, model,
                                                    images.shape[2:],
                                                    classes),
            **check,
        }
        if fmt.startswith('onnx'):
            meta['opset'] = ONNX_OPSET
        with open(export_file + '.json', 'w') as f:
            json.dump(meta, f, indent=2)
            f.write('\n')
        return meta

    described = []
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        # The ONNX export is what OpenVINO and the quantizers start from.
        onnx_file = path('onnx') if 'onnx' in formats else osp.join(
            tmp, 'fp32.onnx')
        if any(f != 'torchscript' for f in formats):
            export_onnx(exportable, example, onnx_file)
        for fmt in (f for f in formats if f not in INT8_FORMATS):
            export_file = path(fmt)
            print_log(f'Exporting {fmt} to {export_file}', logger='current')
            if fmt == 'torchscript':
                export_torchscript(exportable, example, export_file)
            elif fmt == 'openvino':
                export_openvino(onnx_file, export_file)
            scores = run_export(fmt, export_file, images)
            max_diff = float(np.abs(scores - reference).max())
            passed = scores.shape == reference.shape and max_diff <= tolerance
            described.append(describe(fmt, export_file, {'parity': {
                'reference': 'PyTorch, MMPretrain model.test_step',
                'num_images': int(len(images)),
                'traced_batch_size': int(len(example)),
                'max_abs_diff_scores': max_diff,
                'tolerance': tolerance,
                'top1_agree': bool(
                    (scores.argmax(1) == reference.argmax(1)).all()),
                'passed': bool(passed),
            }}))
            print_log(
                f'{fmt}: max |score difference| vs PyTorch on {len(images)} '
                f'images = {max_diff:.2e} (tolerance {tolerance:.0e}): '
                f'{"OK" if passed else "FAILED"}',
                logger='current')
            if not passed:
                failures.append(f'{fmt} ({export_file}): max difference '
                                f'{max_diff:.2e} > {tolerance:.0e}')
        if failures:
            raise ExportParityError(
                'Exported scores differ from PyTorch\'s: ' +
                '; '.join(failures) + '. Do not deploy these files; check '
                'the export warnings above.')

        int8_formats = [f for f in formats if f in INT8_FORMATS]
        if int8_formats:
            if calib_image_paths:
                calib = file_samples(cfg, calib_image_paths)
                source = 'given files'
            else:
                calib = split_samples(cfg, 'train_dataloader', calib_images)
                source = (f'seeded choice (seed {CALIB_SEED}) of the '
                          'training split')
            verify = split_samples(cfg, 'val_dataloader', verify_images)
        for fmt in int8_formats:
            int8_file = path(fmt)
            print_log(f'Quantizing to {int8_file}, calibrated on '
                      f'{len(calib)} photos ({source})', logger='current')
            calibration = dict(num_images=len(calib), source=source)
            if fmt == 'onnx-int8':
                quantize_onnx(onnx_file, int8_file, calib, to_rgb(model))
                calibration['method'] = ONNX_INT8_METHOD
                session = OnnxRuntimeSession(int8_file, int8=True)
            else:
                import openvino
                control = split_samples(cfg, 'train_dataloader',
                                        calib_images, seed=CONTROL_SEED)
                calibration.update(quantize_openvino(
                    openvino.convert_model(onnx_file), int8_file, calib,
                    control, to_rgb(model), min_agreement))
                # The float layers in float32: the check is of int8 alone.
                session = OpenVINOSession(int8_file, 'float32', int8=True)
            agreement = verify_agreement(model, session, verify,
                                         min_agreement, to_rgb(model))
            described.append(describe(fmt, int8_file, {
                'calibration': calibration,
                'agreement': agreement,
            }))
            _check_agreement(fmt, int8_file, agreement, min_agreement)
    return described


def _check_agreement(fmt: str, int8_file: str, agreement: dict,
                     min_agreement: float) -> None:
    """Log the int8 check; refuse the model below ``min_agreement``."""
    summary = (f'top-1 agrees with PyTorch float32 on '
               f'{100 * agreement["top1_agreement"]:.1f} % of '
               f'{agreement["num_images"]} validation photos')
    print_log(
        f'{fmt}: {summary}; top-1 accuracy int8 '
        f'{100 * agreement["top1_accuracy_int8"]:.1f} %, float32 '
        f'{100 * agreement["top1_accuracy_fp32"]:.1f} %; max |score '
        f'difference| {agreement["max_abs_diff_scores"]:.3f}',
        logger='current')
    if not agreement['passed']:
        raise QuantizationAgreementError(
            f'{int8_file}: {summary}, below the required '
            f'{100 * min_agreement:g} %; do not deploy it: calibrate on '
            'more, or more typical, photos (--calib-images, --calib-dir) '
            'or export a float format instead.')


def _rounded(values: torch.Tensor) -> List[float]:
    # float32 buffers print as 123.67500305...; the config says 123.675.
    return [round(v, 5) for v in values.flatten().tolist()]
