"""Static int8 quantization of the ONNX export, calibrated and verified.

onnxruntime's own tools (``quantize_static``, QDQ format, per-channel
weights) turn the float32 ONNX export into an int8 one. The activation
ranges come from photos of the training split run through the config's
test pipeline; the result is then compared with PyTorch float32 on photos
of the validation split, and refused when the two disagree too often.
"""
import os
import os.path as osp
import tempfile
from typing import Callable, Iterator, List, Optional, Sequence

import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import Compose, pseudo_collate
from mmengine.registry import DefaultScope

DEFAULT_CALIB_IMAGES = 256
DEFAULT_VERIFY_IMAGES = 500
DEFAULT_MIN_AGREEMENT = 0.99
CALIB_SEED = 0
# Images per onnxruntime/PyTorch run while calibrating and verifying. The
# calibrator keeps only each tensor's min and max per run, so memory stays
# that of one batch.
BATCH = 8


class QuantizationAgreementError(RuntimeError):
    """The int8 model's top-1 agrees with float32 PyTorch too rarely."""


def _test_pipeline(cfg: Config) -> list:
    return list(cfg.test_dataloader.dataset.pipeline)


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


def split_samples(cfg: Config, loader: str, num_images: int,
                  seed: int = CALIB_SEED) -> List[Callable[[], dict]]:
    """A seeded choice of ``num_images`` photos of a loader's dataset, each
    as a function loading it through the config's *test* pipeline."""
    dataset = build_dataset_on_disk(
        dict(cfg[loader].dataset, pipeline=_test_pipeline(cfg)))
    count = min(num_images, len(dataset))
    chosen = np.random.default_rng(seed).choice(
        len(dataset), count, replace=False)
    return [lambda i=int(i): dataset[i] for i in sorted(chosen)]


def file_samples(cfg: Config,
                 paths: Sequence[str]) -> List[Callable[[], dict]]:
    """Image files through the config's test pipeline, one function each."""
    from mmpretrain.registry import TRANSFORMS
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        pipeline = Compose([TRANSFORMS.build(t) for t in _test_pipeline(cfg)])
    return [lambda p=p: pipeline(dict(img_path=p)) for p in paths]


def _batches(samples: Sequence[Callable[[], dict]]) -> Iterator[dict]:
    for start in range(0, len(samples), BATCH):
        with DefaultScope.overwrite_default_scope('mmpretrain'):
            yield pseudo_collate(
                [load() for load in samples[start:start + BATCH]])


class PipelineCalibrationReader:
    """onnxruntime's CalibrationDataReader over photos, batch by batch.

    Photos are loaded lazily, so a few hundred calibration images never sit
    in memory at once.
    """

    def __init__(self, model, samples: Sequence[Callable[[], dict]]):
        from .export import deploy_inputs
        self._inputs = (deploy_inputs(model, batch).numpy()
                        for batch in _batches(samples))

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


def quantize_onnx(fp32_file: str, out_file: str, model,
                  calib_samples: Sequence[Callable[[], dict]]) -> str:
    """Write the int8 (QDQ, per-channel weights) version of ``fp32_file``.

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
            PipelineCalibrationReader(model, calib_samples),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            nodes_to_exclude=softmax)
    return out_file


def verify_agreement(model, session, samples: Sequence[Callable[[], dict]],
                     min_agreement: float) -> dict:
    """Top-1 agreement, accuracies and score differences: int8 vs fp32.

    Float32 is MMPretrain's own inference (``model.test_step``).
    """
    from .export import deploy_inputs
    ref_scores, int8_scores, labels = [], [], []
    for batch in _batches(samples):
        with torch.no_grad():
            outputs = model.test_step(batch)
        ref_scores.append(torch.stack([o.pred_score for o in outputs]))
        labels += [int(o.gt_label[0]) for o in outputs]
        int8_scores.append(torch.from_numpy(session.run(
            ['scores'], {'input': deploy_inputs(model, batch).numpy()})[0]))
    ref, q = torch.cat(ref_scores).float(), torch.cat(int8_scores).float()
    labels = torch.tensor(labels)
    agree = (ref.argmax(1) == q.argmax(1)).float().mean().item()
    return {
        'reference': 'PyTorch float32, MMPretrain model.test_step',
        'num_images': len(labels),
        'top1_agreement': agree,
        'top1_accuracy_int8': (q.argmax(1) == labels).float().mean().item(),
        'top1_accuracy_fp32': (ref.argmax(1) == labels).float().mean().item(),
        'max_abs_diff_scores': (ref - q).abs().max().item(),
        'min_agreement': min_agreement,
        'passed': agree >= min_agreement,
    }


def ort_session(onnx_file: str, num_threads: Optional[int] = None):
    """An onnxruntime CPU session using this process's cores.

    Args:
        num_threads: intra-op threads; default: the cores this process may
            run on (``os.sched_getaffinity``), so a container or ``taskset``
            limit is respected.
    """
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = num_threads or len(os.sched_getaffinity(0))
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # Idle threads sleep instead of spinning, so data-loading workers on
    # the same cores are not starved between batches.
    options.add_session_config_entry('session.intra_op.allow_spinning', '0')
    return ort.InferenceSession(
        onnx_file, options, providers=['CPUExecutionProvider'])

