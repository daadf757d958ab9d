"""The prediction service: a web page, ``/predict``, ``/cam``, ``/health``,
``/model``.

Built on FastAPI. Images are classified by the project's one inference path
(a :class:`flower_mm.apis.Predictor` from
:func:`flower_mm.apis.load_predictor`, on the backend ``auto`` picks for a
long-lived service or the one asked for): uploads are decoded and
preprocessed on the request's thread (``prepare_bytes``), so that work
overlaps the model's, and batched across requests by one model thread
(:class:`BatchingWorker`). Uploads stay in memory: the body is counted while
it streams in and refused past ``max_upload_mb``; no file is written and no
client-given name is opened. ``/cam`` explains one photo with
:func:`flower_mm.apis.compute_cam` on the same model, run on the model
thread between batches.
"""
import asyncio
import base64
import os.path as osp
import time
from concurrent.futures import Future
from contextlib import asynccontextmanager
from typing import AsyncIterator, List, Optional, Tuple

import cv2
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse
from pydantic import BaseModel
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from ..apis import (CAM_METHODS, SERVICE, can_explain, compute_cam,
                    failure_reason, load_predictor, overlay_heatmap)
from ..datasets.preparation import sha256_file
from ..transforms import ImageDecodeError, decode_to_bgr

from .worker import BatchingWorker, QueueFullError

STATIC_DIR = osp.join(osp.dirname(osp.abspath(__file__)), 'static')
UPLOAD_FIELD = 'files'
# Seconds a client told "busy" (503) should wait before trying again.
RETRY_AFTER_S = 1
# What the upload endpoints answer besides 200 (for /docs).
UPLOAD_RESPONSES = {
    413: {'description': 'body over max_upload_mb, or too many files'},
    415: {'description': 'not multipart/form-data'},
    422: {'description': f'no file in the "{UPLOAD_FIELD}" field'},
    503: {'description': 'the queue is full; retry after Retry-After '
          'seconds'},
}


class Prediction(BaseModel):
    label: str
    score: float


class FileResult(BaseModel):
    name: str
    topk: List[Prediction] = []
    error: Optional[str] = None


class PredictResponse(BaseModel):
    results: List[FileResult]
    time_ms: float


class CamResponse(BaseModel):
    name: str
    method: str
    label: str
    score: float
    width: int
    height: int
    image: str  # data:image/png;base64,... (the overlay, as an <img> src)
    time_ms: float


class ModelInfo(BaseModel):
    classes: List[str]
    config: str
    checkpoint: str
    checkpoint_sha256: str
    device: str
    precision: str
    backend: str
    backend_choice: str  # why this backend runs the model
    max_batch: int
    max_files: int
    max_upload_mb: float
    explain: bool  # whether /cam works (PyTorch backends only)


class Health(BaseModel):
    status: str
    queued: int


def create_app(config,
               model: str,
               device: str = 'auto',
               backend: str = 'auto',
               max_batch: int = 16,
               max_upload_mb: float = 20,
               max_files: int = 64,
               max_queue: int = 64,
               max_wait_ms: float = 5.) -> FastAPI:
    """Load the model and build the app (serve it with uvicorn).

    Args:
        config (str | Config): Config the model was trained with.
        model (str): Checkpoint from ``tools/train.py`` (loaded through the
            project's safe, ``weights_only`` loader), or an export of
            ``tools/export.py`` (file or folder).
        device (str): 'auto' (the GPU if any), 'cpu', 'cuda', 'cuda:1'...
        backend (str): One of :data:`flower_mm.apis.BACKENDS`; ``'auto'``
            chooses for a long-lived service (:func:`choose_backend`).
        max_batch (int): Most images per forward pass.
        max_upload_mb (float): Largest request body; larger ones get 413.
        max_files (int): Most files per request; more get 413.
        max_queue (int): Requests that may wait for the model; more get 503.
        max_wait_ms (float): How long a batch waits for more requests.
    """
    predictor = load_predictor(config, model, backend,
                               None if device == 'auto' else device,
                               num_images=SERVICE)
    # The first batch compiles (pytorch-compiled): before the first user.
    predictor.warm_up()
    info = dict(
        classes=list(predictor.classes),
        config=config if isinstance(config, str) else str(config.filename),
        checkpoint=osp.basename(predictor.model_file),
        checkpoint_sha256=sha256_file(predictor.model_file)[:12],
        device=str(predictor.device),
        precision=predictor.precision,
        backend=predictor.backend,
        backend_choice=predictor.choice)
    return build_app(predictor, info, max_batch, max_upload_mb, max_files,
                     max_queue, max_wait_ms)


def build_app(classifier,
              model: dict,
              max_batch: int = 16,
              max_upload_mb: float = 20,
              max_files: int = 64,
              max_queue: int = 64,
              max_wait_ms: float = 5.) -> FastAPI:
    """The app around an already loaded classifier (see :func:`create_app`);
    ``model`` describes it for ``/model`` (the fields of :class:`ModelInfo`
    but the limits)."""
    explain = can_explain(classifier)
    info = ModelInfo(**model, max_batch=max_batch, max_files=max_files,
                     max_upload_mb=max_upload_mb, explain=explain)
    worker = BatchingWorker(classifier, max_batch, max_wait_ms, max_queue)
    max_bytes = int(max_upload_mb * 2**20)
    with open(osp.join(STATIC_DIR, 'index.html'), encoding='utf-8') as f:
        page = f.read()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        worker.start()
        yield
        worker.stop()

    app = FastAPI(
        title='flower-mm',
        description='Classify flower photos with a trained flower-mm model.',
        lifespan=lifespan)
    app.state.worker = worker
    app.state.model_info = info

    @app.get('/', response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        # Everything the page needs is in it: nothing loads from elsewhere.
        return HTMLResponse(page, headers={
            'Content-Security-Policy':
            "default-src 'self'; img-src 'self' blob: data:; "
            "style-src 'unsafe-inline'; script-src 'unsafe-inline'"
        })

    @app.get('/health', response_model=Health)
    async def health() -> Health:
        return Health(status='ok', queued=worker.queued)

    @app.get('/model', response_model=ModelInfo)
    async def model_info() -> ModelInfo:
        return info

    @app.post(
        '/predict',
        response_model=PredictResponse,
        responses=UPLOAD_RESPONSES,
        openapi_extra={'requestBody': _multipart_body_schema()})
    async def predict(request: Request,
                      topk: int = Query(
                          5, ge=1, description='classes per file')
                      ) -> PredictResponse:
        """Top-k classes of each uploaded photo (multipart field
        ``files``, one or many). A file that cannot be read gets an
        ``error``; the others are still answered."""
        start = time.perf_counter()
        files = await _read_uploads(request, max_bytes, max_files)
        # Decoded here, on a thread of its own, while the model runs.
        prepared = await run_in_threadpool(classifier.prepare_bytes, files)
        future = _queued(worker.submit, prepared, topk)
        results = await asyncio.wrap_future(future)
        return PredictResponse(
            results=[_file_result(r) for r in results],
            time_ms=(time.perf_counter() - start) * 1e3)

    @app.post(
        '/cam',
        response_model=CamResponse,
        responses={
            **UPLOAD_RESPONSES,
            413: {'description': 'body over max_upload_mb, or more than one '
                  'file'},
            422: {'description': 'no file, an unknown method, or a file '
                  'that is no readable image'},
            501: {'description': 'the backend has no gradients '
                  '(onnxruntime, openvino)'},
        },
        openapi_extra={'requestBody': _multipart_body_schema()})
    async def cam(request: Request,
                  method: str = Query(
                      'gradcam', description=' | '.join(CAM_METHODS))
                  ) -> CamResponse:
        """The heat map of what the model looked at in one photo (field
        ``files``), blended over the photo as the model saw it (resized,
        centre-cropped), as a PNG data URL; with the predicted class."""
        start = time.perf_counter()
        if method.lower() not in CAM_METHODS:
            raise HTTPException(
                422, f'Unknown method "{method}"; use one of: '
                f'{", ".join(CAM_METHODS)}.')
        if not explain:
            raise HTTPException(
                501, f'Heat maps need the PyTorch model (gradients); the '
                f'{info.backend} backend has none. Serve the checkpoint '
                '(--backend pytorch or auto) to explain predictions.')
        [(name, data)] = await _read_uploads(request, max_bytes, 1)
        # On the model thread, like /predict's decoding: grad-cam hooks
        # the model's layers, so no batch may run through it meanwhile.
        future = _queued(worker.call,
                         lambda: _explain(classifier, name, data, method))
        try:
            result = await asyncio.wrap_future(future)
        except ImageDecodeError as err:
            raise HTTPException(
                422, _named(name, failure_reason(err))) from None
        return CamResponse(
            **result, time_ms=(time.perf_counter() - start) * 1e3)

    return app


def _queued(enqueue, *args) -> Future:
    """``enqueue(*args)`` (a :class:`BatchingWorker` method); a full queue
    answers 503 with ``Retry-After``."""
    try:
        return enqueue(*args)
    except QueueFullError as err:
        raise HTTPException(
            503, f'The server is busy ({err}); retry in {RETRY_AFTER_S} s.',
            headers={'Retry-After': str(RETRY_AFTER_S)}) from None


def _explain(classifier, name: str, data: bytes, method: str) -> dict:
    """:class:`CamResponse`'s fields but the time, for one encoded photo."""
    result = compute_cam(classifier, [decode_to_bgr(data, name)], method)[0]
    overlay = overlay_heatmap(result['image'], result['heatmap'])
    png = cv2.imencode('.png', overlay[..., ::-1])[1]  # OpenCV writes BGR
    return dict(
        name=name,
        method=method.lower(),
        label=result['pred_class'],
        score=result['pred_score'],
        width=overlay.shape[1],
        height=overlay.shape[0],
        image='data:image/png;base64,' + base64.b64encode(png).decode())


def _named(name: str, error: str) -> str:
    """``error`` about the upload ``name``, saying which file it is."""
    return error if f'"{name}"' in error else f'"{name}": {error}'


def _file_result(result: dict) -> FileResult:
    name, error = result['path'], result['error']
    return FileResult(
        name=name,
        topk=[Prediction(label=p['class'], score=p['score'])
              for p in result['topk']],
        error=None if error is None else _named(name, error))


async def _read_uploads(request: Request, max_bytes: int,
                        max_files: int) -> List[Tuple[str, bytes]]:
    """``(filename, bytes)`` of the files in a multipart body, read into
    memory as the body streams in and refused past ``max_bytes``."""
    content_type = request.headers.get('content-type', '')
    if not content_type.lower().startswith('multipart/form-data'):
        raise HTTPException(
            415, f'Send the photos as multipart/form-data (field '
            f'"{UPLOAD_FIELD}"), not "{content_type or "no content type"}".')
    too_large = HTTPException(
        413, f'The request is larger than {max_bytes / 2**20:g} MB '
        '(--max-upload-mb); send fewer or smaller photos per request.')
    length = request.headers.get('content-length')
    if length is not None and length.isdigit() and int(length) > max_bytes:
        raise too_large  # before reading any of it

    async def limited_stream() -> AsyncIterator[bytes]:
        # Content-Length may be absent (chunked) or false: count as well.
        received = 0
        async for chunk in request.stream():
            received += len(chunk)
            if received > max_bytes:
                raise too_large
            yield chunk

    parser = MultiPartParser(
        request.headers, limited_stream(), max_files=max_files,
        max_fields=16)
    # No file can exceed the body limit, so none rolls over to disk.
    parser.spool_max_size = max_bytes + 1
    try:
        form = await parser.parse()
    except MultiPartException as err:
        if str(err).startswith('Too many files'):
            raise HTTPException(
                413, f'More than {max_files} files in one request; send '
                'them in several requests.') from None
        raise HTTPException(400, f'Malformed multipart body: {err}') from None
    try:
        uploads = [
            item for item in form.getlist(UPLOAD_FIELD)
            if isinstance(item, UploadFile)
        ]
        if not uploads:
            raise HTTPException(
                422, f'No file in the multipart field "{UPLOAD_FIELD}"; '
                f'send the photos as {UPLOAD_FIELD}=@photo.jpg.')
        return [(u.filename or f'file {i + 1}', await u.read())
                for i, u in enumerate(uploads)]
    finally:
        await form.close()


def _multipart_body_schema() -> dict:
    return {
        'required': True,
        'content': {
            'multipart/form-data': {
                'schema': {
                    'type': 'object',
                    'required': [UPLOAD_FIELD],
                    'properties': {
                        UPLOAD_FIELD: {
                            'type': 'array',
                            'items': {'type': 'string', 'format': 'binary'},
                            'description': 'one or more photos',
                        }
                    },
                }
            }
        },
    }
