"""Classify image files in batches with MMPretrain's inferencer.

Built on :class:`mmpretrain.apis.ImageClassificationInferencer` (model,
checkpoint, classes and the config's test pipeline), but every file is
decoded and preprocessed on its own first, so one unreadable file is
reported with its reason instead of aborting the whole batch. The batching
(:class:`PhotoBatchPredictor`) is shared with the ONNX backend
(:mod:`flower_mm.apis.onnx_inference`).
"""
import csv
import glob
import json
import os
import os.path as osp
import sys
from functools import partial
from typing import List, Optional, Sequence, Tuple

import torch
from mmengine.config import Config
from mmengine.dataset import default_collate
from mmengine.fileio import get as read_bytes
from mmengine.utils import ProgressBar

from flower_mm.engine.hooks import channels_last_enabled, to_channels_last
from flower_mm.engine.runner import loop_fp16
from flower_mm.transforms import ImageDecodeError, decode_to_bgr
from flower_mm.datasets.categories import IMG_EXTENSIONS
from flower_mm.utils import (inference_precision, load_trained_classifier,
                             resolve_inference_dtype)

OUTPUT_FORMATS = ('.csv', '.json')


def collect_image_inputs(
        inputs: Sequence[str]) -> List[Tuple[str, Optional[str]]]:
    """Expand files, folders (recursively) and glob patterns.

    Returns:
        list[tuple]: ``(path, error)`` per image in input order, without
        duplicates. ``error`` is None, or says why an input names no image
        (missing file, empty folder, pattern matching nothing); such inputs
        stay in the list so that they are reported with the rest.
    """
    items, seen = [], set()

    def add(path, error=None):
        if path not in seen:
            seen.add(path)
            items.append((path, error))

    for inp in inputs:
        if osp.isdir(inp):
            found = _images_under(inp)
            if not found:
                add(inp, 'folder holds no images (looked for '
                    f'{", ".join(IMG_EXTENSIONS)}, recursively)')
            for path in found:
                add(path)
        elif osp.isfile(inp):
            add(inp)  # named explicitly: tried whatever its extension
        elif glob.has_magic(inp):
            matches = sorted(glob.glob(inp, recursive=True))
            found = []
            for match in matches:
                if osp.isdir(match):
                    found += _images_under(match)
                elif match.lower().endswith(IMG_EXTENSIONS):
                    found.append(match)
            if not found:
                add(inp, 'pattern matches no image file')
            for path in found:
                add(path)
        else:
            add(inp, 'file does not exist')
    return items


def _images_under(folder: str) -> List[str]:
    paths = []
    for root, dirs, names in os.walk(folder, followlinks=True):
        dirs.sort()
        paths += [
            osp.join(root, n) for n in sorted(names)
            if n.lower().endswith(IMG_EXTENSIONS)
        ]
    return paths


class PhotoBatchPredictor:
    """Top-k predictions for image files, batch by batch, for any backend.

    A subclass sets ``classes``, ``device``, ``pipeline`` (the test
    pipeline after decoding, ending in ``PackInputs``), ``precision``, and
    runs a collated batch in :meth:`predict_batch`.
    """

    classes: List[str]
    device: str
    precision: str

    def predict_batch(self, batch: dict) -> list:
        """Data samples with ``pred_score`` for a collated batch."""
        raise NotImplementedError

    def predict(self,
                items: Sequence[Tuple[str, Optional[str]]],
                topk: int = 3,
                batch_size: int = 16,
                progress: bool = True) -> List[dict]:
        """Classify ``items`` from :func:`collect_image_inputs`.

        Returns:
            list[dict]: One per item, in order: ``path``, ``topk`` (a list of
            ``{'class', 'score'}``, best first, scores are softmax
            probabilities) and ``error`` (None, or why the file failed).
        """
        return self._classify([(path, error, partial(read_bytes, path))
                               for path, error in items], topk, batch_size,
                              progress)

    def predict_bytes(self,
                      files: Sequence[Tuple[str, bytes]],
                      topk: int = 3,
                      batch_size: int = 16) -> List[dict]:
        """As :meth:`predict`, for encoded images already in memory (e.g.
        uploads): ``(name, data)`` pairs. ``name`` only labels the result;
        no file is opened."""
        return self._classify([(name, None, lambda data=data: data)
                               for name, data in files], topk, batch_size,
                              progress=False)

    def _classify(self, sources, topk: int, batch_size: int,
                  progress: bool) -> List[dict]:
        """``sources``: ``(name, error, read)``; ``read()`` gives the encoded
        bytes of an item whose ``error`` is None."""
        topk = min(topk, len(self.classes))
        results: List[Optional[dict]] = [None] * len(sources)
        bar = ProgressBar(len(sources), file=sys.stderr) if progress else None
        pending = []

        def done(n=1):
            if bar is not None:
                for _ in range(n):
                    bar.update()

        def flush():
            preds = self.predict_batch(
                default_collate([data for _, data in pending]))
            for (idx, _), pred in zip(pending, preds):
                scores, labels = pred.pred_score.float().cpu().topk(topk)
                results[idx] = dict(
                    path=sources[idx][0],
                    topk=[{
                        'class': self.classes[label],
                        'score': float(score)
                    } for score, label in zip(scores.tolist(),
                                              labels.tolist())],
                    error=None)
            done(len(pending))
            pending.clear()

        for idx, (name, error, read) in enumerate(sources):
            if error is None:
                try:
                    pending.append((idx, self.preprocess(read(), name)))
                except Exception as err:
                    error = _reason(err)
            if error is not None:
                results[idx] = dict(path=name, topk=[], error=error)
                done()
            if len(pending) >= batch_size:
                flush()
        if pending:
            flush()
        if bar is not None:
            sys.stderr.write('\n')
        return results

    def preprocess(self, image, name: Optional[str] = None) -> dict:
        """The test pipeline's packed inputs for an image file, its bytes
        (``name`` names them in errors) or a decoded BGR ``uint8`` array,
        as :meth:`predict` feeds the model."""
        if isinstance(image, str):
            img = decode_to_bgr(read_bytes(image), image)
        elif isinstance(image, (bytes, bytearray, memoryview)):
            img = decode_to_bgr(bytes(image), name or '<bytes>')
        else:
            img = image
        # The pipeline is the config's test pipeline without its loading
        # step; it takes decoded images as MMPretrain's inferencer passes
        # them.
        return self.pipeline(
            dict(img=img, img_shape=img.shape[:2], ori_shape=img.shape[:2]))


class BatchImageClassifier(PhotoBatchPredictor):
    """Top-k predictions for image files, from a config and a checkpoint.

    Built on MMPretrain's ``ImageClassificationInferencer``. Runs at the
    precision and memory format ``tools/test.py`` uses with the same config:
    ``test_cfg.fp16`` (see :class:`AmpTestLoop`) and
    ``default_hooks.channels_last`` (see :class:`ChannelsLastHook`).
    :class:`~flower_mm.apis.OnnxImageClassifier` is the same for an ONNX
    export.

    Args:
        config (str | Config): Config (file) the checkpoint was trained
            with.
        checkpoint (str): Checkpoint written by ``tools/train.py``.
        device (str, optional): 'cuda', 'cpu'...; the GPU when there is one
            by default (MMPretrain's inferencer keeps the CPU otherwise).
    """

    def __init__(self,
                 config,
                 checkpoint: str,
                 device: Optional[str] = None):
        from mmpretrain.apis import ImageClassificationInferencer
        cfg = Config.fromfile(config) if isinstance(config, str) else config
        self.device = device or ('cuda'
                                 if torch.cuda.is_available() else 'cpu')
        self.device_type = torch.device(self.device).type
        self.cast_dtype = resolve_inference_dtype(
            loop_fp16(cfg.get('test_cfg')), self.device_type,
            'test_cfg.fp16')
        # The checkpoint read once, for the weights and the class names.
        model, self.classes = load_trained_classifier(cfg, checkpoint,
                                                      self.device)
        self.inferencer = ImageClassificationInferencer(
            model=model, pretrained=False, device=self.device,
            classes=self.classes)
        self.pipeline = self.inferencer.pipeline
        self.channels_last = channels_last_enabled(cfg)
        if self.channels_last:
            to_channels_last(self.inferencer.model)

    @property
    def precision(self) -> str:
        """E.g. 'bfloat16 autocast, channels-last' or 'float32'."""
        text = (f'{str(self.cast_dtype)[6:]} autocast'
                if self.cast_dtype else 'float32')
        return text + (', channels-last' if self.channels_last else '')

    def predict_batch(self, batch: dict) -> list:
        with inference_precision(self.inferencer.model, self.device_type,
                                 self.cast_dtype):
            return self.inferencer.forward(batch)


def _reason(err: Exception) -> str:
    if isinstance(err, ImageDecodeError):
        return err.reason  # the decoding policy's words, as everywhere
    return f'{type(err).__name__}: {err}'


def predictions_table(results: Sequence[dict],
                      topk: int,
                      score_digits: int = 4) -> Tuple[list, list]:
    """Headers and rows: path, then class/score per rank, then error."""
    headers = ['path']
    for k in range(1, topk + 1):
        headers += [f'top{k}_class', f'top{k}_score']
    headers.append('error')
    rows = []
    for r in results:
        row = [r['path']]
        for k in range(topk):
            if k < len(r['topk']):
                pred = r['topk'][k]
                row += [pred['class'], f'{pred["score"]:.{score_digits}f}']
            else:
                row += ['', '']
        row.append(r['error'] or '')
        rows.append(row)
    return headers, rows


def write_predictions(results: Sequence[dict], out_file: str,
                      topk: int) -> str:
    """Write predictions as CSV (one row per image) or JSON (a list)."""
    ext = osp.splitext(out_file)[1].lower()
    if ext not in OUTPUT_FORMATS:
        raise ValueError(f'Output file "{out_file}" must end in .csv or '
                         '.json.')
    out_dir = osp.dirname(out_file)
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
    if ext == '.csv':
        headers, rows = predictions_table(results, topk, score_digits=6)
        with open(out_file, 'w', newline='') as f:
            writer = csv.writer(f)
            writer.writerow(headers)
            writer.writerows(rows)
    else:
        with open(out_file, 'w') as f:
            json.dump(list(results), f, indent=2)
            f.write('\n')
    return out_file
