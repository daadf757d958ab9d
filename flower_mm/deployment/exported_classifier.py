"""An export (ONNX or OpenVINO, float or int8) as an MMPretrain classifier.

Registered in MMPretrain's ``MODELS``, it takes the place of the
``ImageClassifier`` in a config, so ``tools/test.py`` runs MMEngine's own
test loop, evaluator and report hooks on it, and the predictors of
``flower_mm.apis`` batch photos through it exactly as through the PyTorch
model.
"""
import os.path as osp
from typing import List, Optional

import torch
from mmengine.logging import print_log
from mmengine.model import BaseModel
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from .runtime import ExportedModelError, open_session, read_export_description


@MODELS.register_module()
class ExportedClassifier(BaseModel):
    """Runs an export of ``tools/export.py`` on onnxruntime or OpenVINO.

    The export normalises inside its graph, so the data preprocessor only
    stacks the images, orders their channels as the export expects and
    makes them float (0-255).

    Args:
        model_file (str): ``.onnx`` or ``.xml`` from ``tools/export.py``,
            with its JSON.
        runtime (str): 'onnxruntime' or 'openvino' (see
            :func:`flower_mm.apis.choose_backend` for which runs what).
        float_precision (str, optional): OpenVINO: 'float32' or 'bfloat16'
            for its float layers; None: OpenVINO's default here.
        num_threads (int, optional): the runtime's threads; default: the
            cores this process may use.
        data_preprocessor (dict, optional): default: MMPretrain's
            ``ClsDataPreprocessor`` without normalisation, in the channel
            order of the export; one with mean/std is refused.
    """

    def __init__(self,
                 model_file: str,
                 runtime: str = 'onnxruntime',
                 float_precision: Optional[str] = None,
                 num_threads: Optional[int] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg=None):
        self.meta = read_export_description(model_file)
        preprocess = self.meta['preprocess']
        self.classes = list(preprocess['classes'])
        if data_preprocessor is None:
            # num_classes: ConfigCheckHook compares it with the data's.
            data_preprocessor = dict(
                type='ClsDataPreprocessor',
                to_rgb=preprocess['channel_order'] == 'RGB',
                num_classes=len(self.classes))
        elif data_preprocessor.get('mean') is not None:
            raise ExportedModelError(
                f'{model_file} normalises inside its graph; give '
                'ExportedClassifier a data_preprocessor without mean/std '
                '(or none, and set the config\'s data_preprocessor=None).')
        super().__init__(
            data_preprocessor=MODELS.build(data_preprocessor),
            init_cfg=init_cfg)
        self.model_file = model_file
        self.session = open_session(model_file, runtime, float_precision,
                                    num_threads)
        print_log(f'ExportedClassifier: {osp.basename(model_file)} on '
                  f'{self.session.describe()}', logger='current')

    @property
    def precision(self) -> str:
        """E.g. 'openvino (int8, bfloat16 elsewhere)'."""
        return self.session.describe()

    def forward(self,
                inputs: torch.Tensor,
                data_samples: Optional[List[DataSample]] = None,
                mode: str = 'tensor'):
        """``mode='tensor'``: the scores [N, num_classes]; ``'predict'``:
        data samples with ``pred_score`` and ``pred_label`` set."""
        scores = torch.from_numpy(
            self.session.run(inputs.float().contiguous().cpu().numpy()))
        if mode == 'tensor':
            return scores
        if mode != 'predict':
            raise RuntimeError(f'An exported model only predicts; mode '
                               f'"{mode}" needs the PyTorch checkpoint.')
        if data_samples is None:
            data_samples = [DataSample() for _ in range(len(scores))]
        for sample, score in zip(data_samples, scores):
            sample.set_pred_score(score).set_pred_label(score.argmax())
        return data_samples
