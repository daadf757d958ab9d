"""The predictor interface every backend implements: photos in, top-k
classes out.

:class:`Predictor` decodes each photo on its own (so one unreadable file is
reported with its reason instead of aborting the whole batch), runs the
test pipeline on threads while the model runs the previous batch, batches,
and turns scores into top-k classes. A backend (PyTorch eager or compiled,
onnxruntime, OpenVINO) only loads its model and runs a collated batch
(:meth:`Predictor.predict_batch`); :func:`flower_mm.apis.load_predictor`
chooses it.
"""
import sys
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import (Callable, Iterable, Iterator, List, Optional, Sequence,
                    Tuple)

from mmengine.dataset import default_collate
from mmengine.fileio import get as read_bytes
from mmengine.utils import ProgressBar

from flower_mm.transforms import ImageDecodeError, decode_to_bgr
from flower_mm.utils.machine import usable_cores

# A photo to classify: (name, error or None, a function giving its bytes).
Source = Tuple[str, Optional[str], Callable[[], bytes]]
# A photo after the test pipeline: (name, packed inputs or None, error).
Prepared = Tuple[str, Optional[dict], Optional[str]]


def failure_reason(err: Exception) -> str:
    """Why a photo could not be classified, in a few words."""
    if isinstance(err, ImageDecodeError):
        return err.reason  # the decoding policy's words, as everywhere
    return f'{type(err).__name__}: {err}'


class Predictor:
    """Top-k predictions for photos, batch by batch, for any backend.

    A backend sets ``classes``, ``device``, ``backend`` (its name, as
    ``--backend`` takes it), ``precision``, ``model_file`` (the file that
    answers), ``pipeline`` (the test pipeline after decoding, ending in
    ``PackInputs``), and runs a collated batch in :meth:`predict_batch`.
    """

    classes: List[str]
    device: str
    backend: str
    precision: str
    model_file: str
    pipeline: Callable[[dict], dict]
    #: why this backend was chosen (set by load_predictor)
    choice: str = ''

    def predict_batch(self, batch: dict) -> list:
        """Data samples with ``pred_score`` for a collated batch."""
        raise NotImplementedError

    def describe(self) -> str:
        """E.g. 'pytorch-compiled (bfloat16 autocast, channels-last)'."""
        return f'{self.backend} ({self.precision})'

    def warm_up(self) -> None:
        """Run a batch of a grey photo, so that what the first batch costs
        (compiling, allocating) is not a user's wait. Two photos: the
        compiled forward runs every batch size through the graph of a
        batch of two or more (``compile_forward``)."""
        import numpy as np
        grey = self.preprocess(np.full((256, 256, 3), 128, np.uint8))
        self.predict_batch(default_collate([grey] * 2))

    def predict(self,
                items: Sequence[Tuple[str, Optional[str]]],
                topk: int = 3,
                batch_size: int = 16,
                progress: bool = True) -> List[dict]:
        """Classify ``items`` from :func:`collect_image_inputs`; photos are
        decoded and preprocessed on threads while the model runs.

        Returns:
            list[dict]: One per item, in order: ``path``, ``topk`` (a list of
            ``{'class', 'score'}``, best first, scores are softmax
            probabilities) and ``error`` (None, or why the file failed).
        """
        sources = [(path, error, partial(read_bytes, path))
                   for path, error in items]
        bar = ProgressBar(len(sources), file=sys.stderr) if progress \
            else None
        results = self.classify_prepared(
            self._prepare_ahead(sources, 2 * batch_size), topk, batch_size,
            bar.update if bar else None)
        if bar is not None:
            sys.stderr.write('\n')
        return results

    def predict_bytes(self,
                      files: Sequence[Tuple[str, bytes]],
                      topk: int = 3,
                      batch_size: int = 16) -> List[dict]:
        """As :meth:`predict`, for encoded images already in memory (e.g.
        uploads): ``(name, data)`` pairs. ``name`` only labels the result;
        no file is opened."""
        return self.classify_prepared(self.prepare_bytes(files), topk,
                                      batch_size)

    def prepare_bytes(self,
                      files: Sequence[Tuple[str, bytes]]) -> List[Prepared]:
        """Encoded images through decoding and the test pipeline, for
        :meth:`classify_prepared` (a service prepares uploads apart from
        the model's thread)."""
        return [self._prepare((name, None, lambda data=data: data))
                for name, data in files]

    def classify_prepared(self, prepared: Iterable[Prepared], topk: int,
                          batch_size: int,
                          done: Optional[Callable[[], None]] = None
                          ) -> List[dict]:
        """Top-k results of prepared photos, in order, ``batch_size`` per
        forward pass; ``done()`` is called once per photo."""
        topk = min(topk, len(self.classes))
        results: List[dict] = []
        pending: List[Tuple[int, dict]] = []

        def flush():
            preds = self.predict_batch(
                default_collate([data for _, data in pending]))
            for (idx, _), pred in zip(pending, preds):
                scores, labels = pred.pred_score.float().cpu().topk(topk)
                results[idx]['topk'] = [{
                    'class': self.classes[label],
                    'score': float(score)
                } for score, label in zip(scores.tolist(), labels.tolist())]
                if done:
                    done()
            pending.clear()

        for name, data, error in prepared:
            results.append(dict(path=name, topk=[], error=error))
            if data is None:
                if done:
                    done()
            else:
                pending.append((len(results) - 1, data))
            if len(pending) >= batch_size:
                flush()
        if pending:
            flush()
        return results

    def _prepare(self, source: Source) -> Prepared:
        name, error, read = source
        if error is not None:
            return name, None, error
        try:
            return name, self.preprocess(read(), name), None
        except Exception as err:
            return name, None, failure_reason(err)

    def _prepare_ahead(self, sources: Sequence[Source],
                       ahead: int) -> Iterator[Prepared]:
        """``sources`` prepared in order, up to ``ahead`` of them in
        advance on threads (OpenCV and the runtimes release the GIL)."""
        threads = max(1, min(2, usable_cores()))
        with ThreadPoolExecutor(threads, 'flower-mm-decode') as pool:
            queued = deque(pool.submit(self._prepare, s)
                           for s in sources[:ahead])
            following = iter(sources[ahead:])
            while queued:
                prepared = queued.popleft().result()
                source = next(following, None)
                if source is not None:
                    queued.append(pool.submit(self._prepare, source))
                yield prepared

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
