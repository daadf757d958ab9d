"""An exported ONNX model (float32 or int8) as an MMPretrain classifier.

Registered in MMPretrain's ``MODELS``, it takes the place of the
``ImageClassifier`` in a config, so ``tools/test.py`` runs MMEngine's own
test loop, evaluator and report hooks on it, and the inference API batches
photos through it exactly as through the PyTorch model.
"""
import json
import os.path as osp
from typing import List, Optional

import torch
from mmengine.model import BaseModel
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from ..utils.user_errors import FlowerUserError
from .quantize import ort_session


class OnnxModelError(FlowerUserError, ValueError):
    """An ONNX model that tools/export.py did not write (or not all of)."""


def read_export_description(onnx_file: str) -> dict:
    """The JSON ``tools/export.py`` writes next to each export."""
    if not osp.isfile(onnx_file):
        raise OnnxModelError(f'ONNX model "{onnx_file}" does not exist.')
    meta_file = onnx_file + '.json'
    if not osp.isfile(meta_file):
        raise OnnxModelError(
            f'"{meta_file}" is missing: it describes the preprocessing the '
            f'model needs; export with tools/export.py --format onnx or '
            f'onnx-int8, which writes it next to the .onnx file.')
    with open(meta_file) as f:
        meta = json.load(f)
    if 'preprocess' not in meta:
        raise OnnxModelError(f'"{meta_file}" has no "preprocess" section; '
                             're-export with tools/export.py.')
    return meta


def onnx_precision(meta: dict) -> str:
    """E.g. 'ONNX int8 (onnxruntime)', for the tools' summaries."""
    dtype = 'int8' if meta.get('format') == 'onnx-int8' else 'float32'
    return f'ONNX {dtype} (onnxruntime)'


@MODELS.register_module()
class OnnxClassifier(BaseModel):
    """Runs an export of ``tools/export.py`` with onnxruntime on the CPU.

    The export normalises inside its graph, so the data preprocessor only
    stacks the images, orders their channels as the export expects and
    makes them float (0-255).

    Args:
        onnx_file (str): ``*.onnx`` from ``tools/export.py``, with its JSON.
        num_threads (int, optional): onnxruntime intra-op threads; default:
            the cores this process may use (see :func:`ort_session`).
        data_preprocessor (dict, optional): default: MMPretrain's
            ``ClsDataPreprocessor`` without normalisation, in the channel
            order of the export; one with mean/std is refused.
    """

    def __init__(self,
                 onnx_file: str,
                 num_threads: Optional[int] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg=None):
        self.meta = read_export_description(onnx_file)
        preprocess = self.meta['preprocess']
        if data_preprocessor is None:
            data_preprocessor = dict(
                type='ClsDataPreprocessor',
                to_rgb=preprocess['channel_order'] == 'RGB')
        elif data_preprocessor.get('mean') is not None:
            raise OnnxModelError(
                f'{onnx_file} normalises inside its graph; give '
                'OnnxClassifier a data_preprocessor without mean/std (or '
                'none, and set the config\'s data_preprocessor=None).')
        super().__init__(
            data_preprocessor=MODELS.build(data_preprocessor),
            init_cfg=init_cfg)
        self.onnx_file = onnx_file
        self.classes = list(preprocess['classes'])
        self.session = ort_session(onnx_file, num_threads)
        self.input_name = self.session.get_inputs()[0].name

    @property
    def precision(self) -> str:
        return onnx_precision(self.meta)

    def forward(self,
                inputs: torch.Tensor,
                data_samples: Optional[List[DataSample]] = None,
                mode: str = 'tensor'):
        """``mode='tensor'``: the scores [N, num_classes]; ``'predict'``:
        data samples with ``pred_score`` and ``pred_label`` set."""
        scores = torch.from_numpy(
            self.session.run(None, {
                self.input_name:
                inputs.float().contiguous().cpu().numpy()
            })[0])
        if mode == 'tensor':
            return scores
        if mode != 'predict':
            raise RuntimeError(f'An ONNX model only predicts; mode "{mode}" '
                               'needs the PyTorch checkpoint.')
        if data_samples is None:
            data_samples = [DataSample() for _ in range(len(scores))]
        for sample, score in zip(data_samples, scores):
            sample.set_pred_score(score).set_pred_label(score.argmax())
        return data_samples
