"""Export a trained classifier to TorchScript or ONNX (float32 or int8),
checked against PyTorch.

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
from mmengine.dataset import Compose, pseudo_collate
from mmengine.logging import print_log
from mmengine.registry import DefaultScope

from ..utils.num_classes import load_trained_classifier
from .quantize import (CALIB_SEED, DEFAULT_CALIB_IMAGES,
                       DEFAULT_MIN_AGREEMENT, DEFAULT_VERIFY_IMAGES,
                       QuantizationAgreementError, build_dataset_on_disk,
                       file_samples, ort_session, quantize_onnx,
                       split_samples, verify_agreement)

EXPORT_FORMATS = {
    'torchscript': '.torchscript.pt',
    'onnx': '.onnx',
    'onnx-int8': '.int8.onnx',
}
# Float32 CPU inference of the same graph differs by about 1e-6; 1e-4 on
# probabilities flags real divergence (wrong preprocessing, ops) only.
DEFAULT_TOLERANCE = 1e-4
ONNX_OPSET = 17


class ExportParityError(RuntimeError):
    """An exported model's outputs differ from PyTorch's."""


class DeployableClassifier(torch.nn.Module):
    """An MMPretrain ``ImageClassifier`` taking float RGB 0-255 images.

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


def load_check_batch(cfg: Config,
                     num_images: int = 8,
                     image_paths: Optional[Sequence[str]] = None) -> dict:
    """Real images through the config's test pipeline, collated.

    Taken from ``image_paths`` when given, else the first ``num_images``
    of the config's test dataset.
    """
    from mmpretrain.registry import TRANSFORMS
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        if image_paths:
            pipeline = Compose([
                TRANSFORMS.build(t)
                for t in cfg.test_dataloader.dataset.pipeline
            ])
            samples = [pipeline(dict(img_path=p)) for p in image_paths]
        else:
            dataset = build_dataset_on_disk(cfg.test_dataloader.dataset)
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


def deploy_inputs(model, batch: dict) -> torch.Tensor:
    """The float tensor the exported model takes, from a collated batch."""
    images = torch.stack(batch['inputs']).float()
    if getattr(model.data_preprocessor, 'to_rgb', False):
        images = images[:, [2, 1, 0]]  # the pipeline yields BGR
    return images.contiguous()


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


def run_export(fmt: str, export_file: str,
               images: torch.Tensor) -> np.ndarray:
    """Load an export back, as a deployer would, and run it."""
    if fmt == 'torchscript':
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', FutureWarning)
            loaded = torch.jit.load(export_file, map_location='cpu')
        with torch.no_grad():
            return loaded(images).numpy()
    session = ort_session(export_file)
    return session.run(['scores'], {'input': images.numpy()})[0]


def preprocessing_description(cfg: Config, model, input_size,
                              classes: List[str]) -> dict:
    """What a deployer must do to a photo before the exported model."""
    from mmpretrain.registry import TRANSFORMS
    steps = []
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        for t in cfg.test_dataloader.dataset.pipeline:
            if 'LoadImage' in t['type'] or t['type'] == 'PackInputs':
                continue
            steps.append(dict(t, details=repr(TRANSFORMS.build(t))))
    preprocessor = model.data_preprocessor
    to_rgb = bool(getattr(preprocessor, 'to_rgb', False))
    normalise = getattr(preprocessor, '_enable_normalize', False)
    return {
        'decode': 'read the photo as 8-bit, 3 channels (grayscale '
        'replicated, transparency flattened onto white), EXIF-rotated',
        'steps': steps,
        'input_size': {'height': input_size[0], 'width': input_size[1]},
        'channel_order': 'RGB' if to_rgb else 'BGR',
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
    batch axis. ``onnx-int8`` quantizes the ONNX export, calibrated on
    ``calib_images`` photos of the training split (or
    ``calib_image_paths``), and checks top-1 agreement with PyTorch on
    ``verify_images`` photos of the validation split instead (see
    :mod:`.quantize`). A JSON describing the preprocessing and the check is
    written next to each export.

    Returns:
        list[dict]: the JSON written for each format.

    Raises:
        ExportParityError: a float export's scores differ from PyTorch's by
            more than ``tolerance`` (its files and JSON are still written).
        QuantizationAgreementError: the int8 model's top-1 agrees with
            PyTorch's on fewer than ``min_agreement`` of the photos (its
            files and JSON are still written).
    """
    cfg = config if isinstance(config, Config) else Config.fromfile(config)
    unknown = [f for f in formats if f not in EXPORT_FORMATS]
    if unknown:
        raise ValueError(f'Unknown export formats {unknown}; choose from '
                         f'{list(EXPORT_FORMATS)}.')
    name = name or osp.splitext(osp.basename(cfg.filename or 'model'))[0]
    model, classes = load_trained_classifier(cfg, checkpoint)

    batch = load_check_batch(cfg, num_check_images, check_image_paths)
    with torch.no_grad():
        reference = torch.stack(
            [s.pred_score for s in model.test_step(batch)]).numpy()
    images = deploy_inputs(model, batch)
    deployable = DeployableClassifier(model).eval()
    # Trace on fewer images than the check uses, so the check exercises a
    # batch size the export never saw.
    example = images[:max(1, min(2, len(images) - 1))]

    os.makedirs(out_dir, exist_ok=True)

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
    for fmt in (f for f in formats if f != 'onnx-int8'):
        export_file = osp.join(out_dir, name + EXPORT_FORMATS[fmt])
        print_log(f'Exporting {fmt} to {export_file}', logger='current')
        (export_torchscript if fmt == 'torchscript' else export_onnx)(
            deployable, example, export_file)
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
            'Exported scores differ from PyTorch\'s: ' + '; '.join(failures)
            + '. Do not deploy these files; check the export warnings above.')

    if 'onnx-int8' in formats:
        int8_file = osp.join(out_dir, name + EXPORT_FORMATS['onnx-int8'])
        with tempfile.TemporaryDirectory() as tmp:
            fp32_file = (osp.join(out_dir, name + EXPORT_FORMATS['onnx'])
                         if 'onnx' in formats else
                         export_onnx(deployable, example,
                                     osp.join(tmp, 'fp32.onnx')))
            if calib_image_paths:
                calib = file_samples(cfg, calib_image_paths)
                source = 'given files'
            else:
                calib = split_samples(cfg, 'train_dataloader', calib_images)
                source = (f'seeded choice (seed {CALIB_SEED}) of the '
                          'training split')
            print_log(f'Quantizing to {int8_file}, calibrated on '
                      f'{len(calib)} photos ({source})', logger='current')
            quantize_onnx(fp32_file, int8_file, model, calib)
        agreement = verify_agreement(
            model, ort_session(int8_file),
            split_samples(cfg, 'val_dataloader', verify_images),
            min_agreement)
        described.append(describe('onnx-int8', int8_file, {
            'calibration': {
                'num_images': len(calib),
                'source': source,
                'method': 'onnxruntime quantize_static, QDQ, MinMax, int8 '
                'activations, per-channel int8 weights, softmax in float',
            },
            'agreement': agreement,
        }))
        summary = (
            f'top-1 agrees with PyTorch float32 on '
            f'{100 * agreement["top1_agreement"]:.1f} % of '
            f'{agreement["num_images"]} validation photos')
        print_log(
            f'onnx-int8: {summary}; top-1 accuracy int8 '
            f'{100 * agreement["top1_accuracy_int8"]:.1f} %, float32 '
            f'{100 * agreement["top1_accuracy_fp32"]:.1f} %; max |score '
            f'difference| {agreement["max_abs_diff_scores"]:.3f}',
            logger='current')
        if not agreement['passed']:
            raise QuantizationAgreementError(
                f'{int8_file}: {summary}, below the required '
                f'{100 * min_agreement:g} %; do not deploy it: calibrate on '
                'more, or more typical, photos (--calib-images, '
                '--calib-dir) or export float32 ONNX instead.')
    return described


def _rounded(values: torch.Tensor) -> List[float]:
    # float32 buffers print as 123.67500305...; the config says 123.675.
    return [round(v, 5) for v in values.flatten().tolist()]
