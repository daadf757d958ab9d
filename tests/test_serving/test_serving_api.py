"""The prediction service's API through FastAPI's TestClient, on a checkpoint
trained by tools/train.py, against the project's inference path."""
import asyncio
import base64
import hashlib
import tempfile
import threading
import time

import cv2
import numpy as np
import pytest
import torch
from conftest import (REFUSED, config_path, score_atol,
                      write_malicious_checkpoint)
from fastapi.testclient import TestClient
from mmengine.config import Config

from flower_mm.apis import PyTorchPredictor
from flower_mm.compat import UnsafeCheckpointError
from flower_mm.datasets import FLOWER_CLASSES
from flower_mm.experiments import parse_cfg_options
from flower_mm.serving import build_app, create_app
from flower_mm.utils import merge_cfg_options


def learned_cfg(learned_model, *options):
    return merge_cfg_options(
        Config.fromfile(learned_model.config),
        parse_cfg_options([*learned_model.cfg_options, *options]))


@pytest.fixture(scope='module')
def served(learned_model):
    """The service in bf16 autocast on every CPU (emulated where the CPU
    has no native bf16), so its mixed-precision path runs everywhere."""
    app = create_app(learned_cfg(learned_model, 'test_cfg.fp16=True'),
                     str(learned_model.checkpoint), device='cpu',
                     # eager: this module tests the API, not the backends
                     # (test_serving_backends.py)
                     backend='pytorch')
    with TestClient(app) as client:
        yield app, client


@pytest.fixture(scope='module')
def classifier(served):
    classifier = served[0].state.worker.classifier
    assert classifier.cast_dtype == torch.bfloat16
    return classifier


@pytest.fixture(scope='module')
def expected_fp32(learned_model, photos):
    """The same photos through the same path in fp32, top 5."""
    fp32 = PyTorchPredictor(
        learned_cfg(learned_model, 'test_cfg.fp16=False'),
        str(learned_model.checkpoint), device='cpu')
    assert fp32.cast_dtype is None
    return {r['path']: r['topk'] for r in fp32.predict_bytes(photos, topk=5)}


@pytest.fixture(scope='module')
def photos(learned_model):
    """(name, bytes) of one val photo per class."""
    return [(p.name, p.read_bytes()) for p in learned_model.one_photo_per_class]


@pytest.fixture(scope='module')
def expected(classifier, learned_model):
    """What tools/infer.py's path (files read from disk) predicts at the
    service's precision (bf16), top 5."""
    photos = learned_model.one_photo_per_class
    results = classifier.predict([(str(p), None) for p in photos], topk=5,
                                 progress=False)
    # A model that has learned: each photo's own class comes first, so
    # the service's answers below are compared with varied ones.
    assert [r['topk'][0]['class'] for r in results] == [
        p.parent.name for p in photos]
    return {r['path'].rsplit('/', 1)[-1]: r['topk'] for r in results}


def post(client, files, **params):
    return client.post(
        '/predict', params=params,
        files=[('files', (name, data, 'image/jpeg')) for name, data in files])


def assert_matches(result, expected_topk):
    assert result['error'] is None
    assert [p['label'] for p in result['topk']] == [
        p['class'] for p in expected_topk[:len(result['topk'])]]
    np.testing.assert_allclose([p['score'] for p in result['topk']],
                               [p['score'] for p in expected_topk[
                                   :len(result['topk'])]], atol=1e-5)


def gated(classifier):
    """The classifier, holding its first call until ``release`` is set."""
    class Gated:
        entered, release = threading.Event(), threading.Event()

        def __getattr__(self, name):
            return getattr(classifier, name)

        def classify_prepared(self, *args, **kwargs):
            self.entered.set()
            assert self.release.wait(30), 'the test never released the model'
            return classifier.classify_prepared(*args, **kwargs)

    return Gated()


def app_with(served, classifier=None, **limits):
    """Another app on the module's classifier (or ``classifier``)."""
    app = served[0]
    info = app.state.model_info.model_dump(
        exclude={'max_batch', 'max_files', 'max_upload_mb', 'explain'})
    return build_app(classifier or app.state.worker.classifier, info,
                     **limits)


def test_page_health_model_and_docs(served, learned_model, classifier):
    _, client = served
    page = client.get('/')
    assert page.status_code == 200
    assert 'text/html' in page.headers['content-type']
    html = page.text
    assert 'name="viewport"' in html
    assert '<label for="files">' in html and 'id="files"' in html
    assert 'multiple' in html.split('id="files"')[1].split('>')[0]
    assert 'http://' not in html and 'https://' not in html  # no CDN
    assert "default-src 'self'" in page.headers['content-security-policy']

    assert client.get('/health').json() == {'status': 'ok', 'queued': 0}
    info = client.get('/model').json()
    digest = hashlib.sha256(learned_model.checkpoint.read_bytes())
    assert info['classes'] == list(FLOWER_CLASSES)
    assert info['checkpoint'] == learned_model.checkpoint.name
    assert info['checkpoint_sha256'] == digest.hexdigest()[:12]
    assert info['config'].endswith('resnet50_flowers.py')
    assert (info['device'], info['backend']) == ('cpu', 'pytorch')
    assert info['precision'] == classifier.precision
    assert info['max_upload_mb'] == 20 and info['max_batch'] == 16
    assert info['explain'] is True

    schema = client.get('/openapi.json').json()
    body = schema['paths']['/predict']['post']['requestBody']
    assert 'files' in body['content']['multipart/form-data']['schema'][
        'properties']
    assert client.get('/docs').status_code == 200


def test_one_photo_as_infer_predicts_it(served, photos, expected):
    name, data = photos[2]
    response = post(served[1], [(name, data)])
    assert response.status_code == 200
    body = response.json()
    [result] = body['results']
    assert result['name'] == name
    assert len(result['topk']) == 5  # the default
    assert sum(p['score'] for p in result['topk']) == pytest.approx(1, 1e-4)
    assert_matches(result, expected[name])
    assert body['time_ms'] > 0


def test_several_photos_and_topk(served, photos, expected):
    response = post(served[1], photos, topk=2)
    assert response.status_code == 200
    results = response.json()['results']
    assert [r['name'] for r in results] == [name for name, _ in photos]
    for result in results:
        assert len(result['topk']) == 2
        assert_matches(result, expected[result['name']])
    # More than there are classes: all of them.
    [result] = post(served[1], photos[:1], topk=50).json()['results']
    assert len(result['topk']) == len(FLOWER_CLASSES)


def test_unreadable_files_get_errors_and_the_rest_answers(
        served, photos, expected):
    name, good = photos[0]
    bad = [('notes.txt', b'these are not the pixels you are looking for'),
           ('cut.jpg', good[:len(good) // 2]), ('empty.jpg', b'')]
    response = post(served[1], bad + [(name, good)])
    assert response.status_code == 200
    results = response.json()['results']
    reasons = {
        'notes.txt': 'not an image (44 bytes',
        'cut.jpg': 'truncated image: the data ends after',
        'empty.jpg': 'empty file (0 bytes)'
    }
    for result in results[:3]:
        assert result['topk'] == []
        assert result['error'].startswith(
            f'"{result["name"]}": {reasons[result["name"]]}'), result['error']
    assert_matches(results[3], expected[name])
    # Garbage first, then a photo: the server keeps serving.
    post(served[1], bad[:1])
    [result] = post(served[1], [(name, good)]).json()['results']
    assert_matches(result, expected[name])


def test_refuses_wrong_requests(served, photos):
    _, client = served
    response = client.post('/predict', json={'files': ['a.jpg']})
    assert response.status_code == 415
    assert 'multipart/form-data' in response.json()['detail']
    response = client.post('/predict', data={'files': 'a.jpg'})
    assert response.status_code == 415  # urlencoded
    response = client.post(
        '/predict', files=[('photo', ('a.jpg', photos[0][1], 'image/jpeg'))])
    assert response.status_code == 422
    assert 'No file in the multipart field "files"' in response.json()[
        'detail']
    assert post(client, photos[:1], topk=0).status_code == 422
    response = client.post(
        '/predict', content=b'--x\r\nnonsense',
        headers={'content-type': 'multipart/form-data; boundary=x'})
    assert response.status_code in (400, 422)


def test_too_many_files_and_too_large_bodies_get_413(served, photos):
    with TestClient(app_with(served, max_files=2, max_upload_mb=0.5)) as c:
        limits = c.get('/model').json()
        assert (limits['max_files'], limits['max_upload_mb']) == (2, 0.5)
        response = post(c, photos[:3])
        assert response.status_code == 413
        assert 'More than 2 files' in response.json()['detail']
        assert post(c, photos[:2]).status_code == 200
        big = np.random.default_rng(0).integers(0, 256, (600, 600, 3),
                                                np.uint8)
        png = cv2.imencode('.png', big)[1].tobytes()  # ~1 MB of noise
        response = post(c, [('big.png', png)])
        assert response.status_code == 413
        assert 'larger than 0.5 MB' in response.json()['detail']


def run_asgi(app, headers, chunks):
    """One request straight into the ASGI app, its body from ``chunks``
    (an iterator). Returns the status and how many chunks were read."""
    read = 0
    messages = []

    async def receive():
        nonlocal read
        chunk = next(chunks, None)
        if chunk is None:
            return {'type': 'http.request', 'body': b'', 'more_body': False}
        read += 1
        return {'type': 'http.request', 'body': chunk, 'more_body': True}

    async def send(message):
        messages.append(message)

    scope = {
        'type': 'http', 'asgi': {'version': '3.0'}, 'http_version': '1.1',
        'method': 'POST', 'scheme': 'http', 'path': '/predict',
        'raw_path': b'/predict', 'root_path': '', 'query_string': b'',
        'headers': [(k.encode(), v.encode()) for k, v in headers.items()],
        'client': ('127.0.0.1', 1), 'server': ('127.0.0.1', 80)
    }
    asyncio.run(app(scope, receive, send))
    return messages[0]['status'], read


def test_413_without_reading_the_body(served):
    app = app_with(served, max_upload_mb=2)
    boundary = 'b0undary'
    headers = {'content-type': f'multipart/form-data; boundary={boundary}'}
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="files"; '
            'filename="huge.jpg"\r\nContent-Type: image/jpeg\r\n\r\n').encode()

    def endless_upload():
        yield head
        while True:
            yield b'\xff' * 2**18  # 256 kB, forever

    # Declared too large: refused before a single byte is read.
    status, read = run_asgi(app, {**headers, 'content-length': str(10**10)},
                            endless_upload())
    assert (status, read) == (413, 0)
    # Streamed without a length: refused as soon as it passes the limit.
    status, read = run_asgi(app, headers, endless_upload())
    assert status == 413
    assert read <= 2 * 4 + 2, f'{read} chunks of 256 kB were read'


def test_uploads_stay_in_memory(served, photos, expected, monkeypatch):
    """A photo larger than Starlette's 1 MB spool threshold is still never
    written to a temporary file."""
    def no_disk(*args, **kwargs):
        raise AssertionError('an upload was written to disk')

    for name in ('TemporaryFile', 'NamedTemporaryFile', 'mkstemp'):
        monkeypatch.setattr(tempfile, name, no_disk)
    name, data = photos[1]
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    big = cv2.resize(img, (900, 900), interpolation=cv2.INTER_NEAREST)
    big = np.clip(big + np.random.default_rng(0).normal(0, 3, big.shape), 0,
                  255).astype(np.uint8)
    png = cv2.imencode('.png', big)[1].tobytes()
    assert len(png) > 1.2 * 2**20
    response = post(served[1], [('big.png', png)])
    assert response.status_code == 200, response.text
    assert response.json()['results'][0]['error'] is None


def test_concurrent_requests_are_batched_and_answered(
        served, classifier, photos, expected):
    model = gated(classifier)
    app = app_with(served, classifier=model, max_batch=16)
    worker = app.state.worker
    answers = {}

    def ask(i, client):
        name, data = photos[i % len(photos)]
        response = post(client, [(name, data)])
        answers[i] = (name, response)

    with TestClient(app) as client:
        threads = [threading.Thread(target=ask, args=(i, client))
                   for i in range(8)]
        threads[0].start()
        assert model.entered.wait(30)
        for t in threads[1:]:
            t.start()
        wait_until(lambda: worker.queued == 7)
        model.release.set()
        for t in threads:
            t.join(60)
    assert sorted(answers) == list(range(8))
    for name, response in answers.values():
        assert response.status_code == 200
        [result] = response.json()['results']
        assert result['name'] == name
        assert_matches(result, expected[name])
    # The first request ran alone; the seven that waited ran as one batch.
    assert list(worker.batch_sizes) == [1, 7]


def test_full_queue_answers_503_with_retry_after(served, classifier, photos,
                                                 expected):
    model = gated(classifier)
    app = app_with(served, classifier=model, max_queue=1)
    answers = {}

    def ask(i, client):
        answers[i] = post(client, photos[i:i + 1])

    with TestClient(app) as client:
        running = threading.Thread(target=ask, args=(0, client))
        running.start()
        assert model.entered.wait(30)  # request 0 holds the model
        waiting = threading.Thread(target=ask, args=(1, client))
        waiting.start()
        wait_until(lambda: app.state.worker.queued == 1)  # fills the queue
        refused = post(client, photos[2:3])
        assert refused.status_code == 503
        assert refused.headers['retry-after'] == '1'
        assert 'busy' in refused.json()['detail']
        model.release.set()
        running.join(60)
        waiting.join(60)
        # Once the queue drains, the same request is answered.
        later = post(client, photos[2:3])
    for i, response in [(0, answers[0]), (1, answers[1]), (2, later)]:
        assert response.status_code == 200
        [result] = response.json()['results']
        assert_matches(result, expected[photos[i][0]])


def post_cam(client, name, data, **params):
    return client.post('/cam', params=params,
                       files=[('files', (name, data, 'image/jpeg'))])


def decode_data_url(url):
    prefix = 'data:image/png;base64,'
    assert url.startswith(prefix), url[:40]
    png = base64.b64decode(url[len(prefix):])
    return cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)


def test_cam_explains_the_class_predict_gives(served, classifier, photos,
                                              expected, expected_fp32):
    name, data = photos[3]
    response = post_cam(served[1], name, data)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body['name'], body['method']) == (name, 'gradcam')
    # /cam runs in fp32 while /predict runs in bf16 (see `served`):
    # the same class, the fp32 path's score.
    assert body['label'] == expected[name][0]['class'] == \
        expected_fp32[name][0]['class']
    assert body['score'] == pytest.approx(expected_fp32[name][0]['score'],
                                          abs=score_atol(None))
    assert expected[name][0]['score'] == pytest.approx(
        expected_fp32[name][0]['score'], abs=score_atol(torch.bfloat16))
    overlay = decode_data_url(body['image'])
    # The size the model sees after the test pipeline's resize and crop.
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    size = tuple(classifier.preprocess(img)['inputs'].shape[1:])
    assert overlay.shape == (*size, 3)
    assert (body['height'], body['width']) == size
    # A jet-coloured blend, not the photo: strongly coloured pixels.
    spread = overlay.max(axis=2).astype(int) - overlay.min(axis=2)
    assert np.percentile(spread, 90) > 60
    # Another method, named in any case.
    body = post_cam(served[1], name, data, method='EigenCAM').json()
    assert (body['method'], body['label']) == ('eigencam',
                                               expected[name][0]['class'])


def test_cam_refuses_bad_input(served, photos):
    _, client = served
    response = post_cam(client, 'notes.txt', b'no pixels here')
    assert response.status_code == 422
    assert response.json()['detail'].startswith('"notes.txt": not an image')
    response = post_cam(client, photos[0][0], photos[0][1], method='nope')
    assert response.status_code == 422
    assert response.json()['detail'].startswith('Unknown method "nope"; '
                                                'use one of: gradcam,')
    response = client.post('/cam', files=[
        ('files', (n, d, 'image/jpeg')) for n, d in photos[:2]])
    assert response.status_code == 413
    response = client.post('/cam', json={'files': ['a.jpg']})
    assert response.status_code == 415
    with TestClient(app_with(served, max_upload_mb=0.001)) as c:
        response = post_cam(c, *photos[0])
        assert response.status_code == 413
        assert 'The request is larger than' in response.json()['detail']
    # The service is fine afterwards.
    assert post_cam(client, *photos[0]).status_code == 200


def test_cam_waits_for_the_running_batch(served, classifier, photos,
                                         expected):
    """Grad-CAM hooks the model: it runs on the model thread, never while a
    batch is in it."""
    model = gated(classifier)
    app = app_with(served, classifier=model)
    answers = {}
    with TestClient(app) as client:
        predicting = threading.Thread(
            target=lambda: answers.update(predict=post(client, photos[:2])))
        predicting.start()
        assert model.entered.wait(30)
        explaining = threading.Thread(
            target=lambda: answers.update(cam=post_cam(client, *photos[4])))
        explaining.start()
        wait_until(lambda: app.state.worker.queued == 1)
        time.sleep(0.3)
        assert 'cam' not in answers
        model.release.set()
        predicting.join(60)
        explaining.join(60)
    assert answers['predict'].status_code == 200
    for result in answers['predict'].json()['results']:
        assert_matches(result, expected[result['name']])
    assert answers['cam'].json()['label'] == expected[photos[4][0]][0][
        'class']


class PredictionsOnly:
    """What a runtime backend offers the app: predictions, no PyTorch
    model (a view of the real classifier without its ``model``)."""

    def __init__(self, classifier):
        self.classes = classifier.classes
        self.prepare_bytes = classifier.prepare_bytes
        self.classify_prepared = classifier.classify_prepared


def test_no_cam_without_gradients(served, classifier, photos, expected):
    info = served[0].state.model_info.model_dump(
        exclude={'max_batch', 'max_files', 'max_upload_mb', 'explain'})
    app = build_app(PredictionsOnly(classifier),
                    {**info, 'backend': 'onnxruntime'})
    with TestClient(app) as client:
        assert client.get('/model').json()['explain'] is False
        response = post_cam(client, *photos[0])
        assert response.status_code == 501
        assert response.json()['detail'].startswith(
            'Heat maps need the PyTorch model (gradients); the '
            'onnxruntime backend has none.')
        [result] = post(client, photos[:1]).json()['results']
        assert_matches(result, expected[photos[0][0]])


def test_refuses_a_crafted_checkpoint(tmp_path):
    """Checkpoints load through the project's safe loader, as in
    tools/infer.py (tools/serve.py prints the message as one error line)."""
    marker = tmp_path / 'pwned'
    evil = write_malicious_checkpoint(tmp_path / 'evil.pth', marker)
    with pytest.raises(UnsafeCheckpointError) as refusal:
        create_app(config_path('resnet50_flowers.py'), str(evil),
                   device='cpu')
    assert REFUSED.format(evil) in str(refusal.value)
    assert not marker.exists()


def wait_until(condition, timeout=30.):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, 'timed out'
        time.sleep(0.01)
