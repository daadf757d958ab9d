"""One model thread that batches concurrent requests.

Requests put their images, decoded and preprocessed already (the model
thread runs the model only), in a bounded queue; the thread takes the first
waiting request, adds any others that arrive within a few milliseconds (up
to ``max_batch`` images) and runs them through the classifier in one call,
so a loaded server runs batches instead of batch-1 per request. Other
work on the model (a class activation map) is queued as a call and runs on
the same thread, between batches, so it never overlaps a forward pass.
"""
import queue
import threading
import time
from collections import deque
from concurrent.futures import Future
from typing import Any, Callable, List, Sequence

from ..apis.predictor import Prepared


class QueueFullError(Exception):
    """More requests are waiting than the queue holds; retry later."""


class _Job:
    __slots__ = ('photos', 'topk', 'future')

    def __init__(self, photos: Sequence[Prepared], topk: int):
        self.photos, self.topk, self.future = photos, topk, Future()


class _Call:
    __slots__ = ('fn', 'future')

    def __init__(self, fn: Callable[[], Any]):
        self.fn, self.future = fn, Future()

    def run(self) -> None:
        try:
            self.future.set_result(self.fn())
        except Exception as err:  # this request fails, the thread lives on
            self.future.set_exception(err)


_STOP = object()


class BatchingWorker:
    """Runs ``classifier.classify_prepared`` for queued requests, batched.

    Args:
        classifier: A :class:`flower_mm.apis.Predictor` (its
            ``classify_prepared(prepared, topk, batch_size)``).
        max_batch (int): Most images per forward pass.
        max_wait_ms (float): How long the first request of a batch waits
            for others to join it.
        max_queue (int): Requests that may wait; :meth:`submit` raises
            :class:`QueueFullError` beyond it.
    """

    def __init__(self,
                 classifier,
                 max_batch: int = 16,
                 max_wait_ms: float = 5.,
                 max_queue: int = 64):
        if max_batch < 1 or max_queue < 1:
            raise ValueError('max_batch and max_queue must be at least 1')
        self.classifier = classifier
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1e3
        self._queue: queue.Queue = queue.Queue(maxsize=max_queue)
        self._thread = None
        # Images per classifier call, the latest 1000 (for tests and logs).
        self.batch_sizes: deque = deque(maxlen=1000)

    @property
    def queued(self) -> int:
        """Requests waiting for the model now."""
        return self._queue.qsize()

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name='flower-mm-model', daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Answer what is queued, then end the thread."""
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join()
            self._thread = None

    def submit(self, photos: Sequence[Prepared], topk: int) -> Future:
        """Queue one request's photos (from ``prepare_bytes``); its future
        gives one result per photo, as ``classify_prepared`` returns them."""
        job = _Job(list(photos), topk)
        self._put(job)
        return job.future

    def call(self, fn: Callable[[], Any]) -> Future:
        """Queue ``fn()`` to run alone on the model thread (between
        batches); its future gives what it returns. Raises
        :class:`QueueFullError` as :meth:`submit` does."""
        job = _Call(fn)
        self._put(job)
        return job.future

    def _put(self, job) -> None:
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            raise QueueFullError(f'{self._queue.maxsize} requests are '
                                 'already waiting') from None

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is _STOP:
                return
            if isinstance(first, _Call):
                first.run()
                continue
            jobs, images, call = [first], len(first.photos), None
            deadline = time.monotonic() + self.max_wait
            while images < self.max_batch:
                try:
                    job = self._queue.get(
                        timeout=max(0., deadline - time.monotonic()))
                except queue.Empty:
                    break
                if job is _STOP:
                    stopping = True
                    break
                if isinstance(job, _Call):
                    call = job  # runs once this batch is answered
                    break
                jobs.append(job)
                images += len(job.photos)
            self._answer(jobs)
            if call is not None:
                call.run()

    def _answer(self, jobs: List[_Job]) -> None:
        photos = [p for job in jobs for p in job.photos]
        try:
            results = self.classifier.classify_prepared(
                photos, max(job.topk for job in jobs), self.max_batch)
        except Exception as err:  # these requests fail, the thread lives on
            for job in jobs:
                job.future.set_exception(err)
            return
        self.batch_sizes.append(len(photos))
        start = 0
        for job in jobs:
            mine = results[start:start + len(job.photos)]
            start += len(job.photos)
            for result in mine:
                result['topk'] = result['topk'][:job.topk]
            job.future.set_result(mine)
