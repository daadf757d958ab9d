"""The service on its backends: ``auto`` (a long-lived service: compiled
PyTorch on CPUs with native bf16), and the exports on onnxruntime and
OpenVINO; each answers PyTorch float32's top-1 on the learned model's
photos, and ``/model`` says what runs and why."""
import numpy as np
import pytest
from fastapi.testclient import TestClient
from mmengine.config import Config

from flower_mm.datasets import FLOWER_CLASSES
from flower_mm.experiments import parse_cfg_options
from flower_mm.serving import create_app
from flower_mm.utils import cpu_has_native_bf16, merge_cfg_options


@pytest.fixture(scope='module')
def cfg(learned_model):
    return merge_cfg_options(Config.fromfile(learned_model.config),
                             parse_cfg_options(learned_model.cfg_options))


def served_top1(app, learned_model):
    """/model, then the top-1 class index of each val photo (5 requests of
    4 photos) and one heat map."""
    photos = [(p.rsplit('/', 1)[-1], open(p, 'rb').read())
              for p in learned_model.val_images]
    with TestClient(app) as client:
        info = client.get('/model').json()
        top1 = []
        for start in range(0, len(photos), 4):
            response = client.post('/predict', files=[
                ('files', (name, data, 'image/jpeg'))
                for name, data in photos[start:start + 4]])
            assert response.status_code == 200
            top1 += [FLOWER_CLASSES.index(r['topk'][0]['label'])
                     for r in response.json()['results']]
        cam = client.post('/cam', files=[
            ('files', (photos[4][0], photos[4][1], 'image/jpeg'))])
    return info, top1, cam


def test_auto_serves_the_checkpoint_compiled_where_it_pays(
        cfg, learned_model, mmpretrain_scores):
    app = create_app(cfg, str(learned_model.checkpoint), device='cpu')
    info, top1, cam = served_top1(app, learned_model)
    compiled = cpu_has_native_bf16()
    assert info['backend'] == ('pytorch-compiled' if compiled else 'pytorch')
    assert info['backend_choice'] == (
        'auto: a long-lived service on a CPU with native bf16' if compiled
        else 'auto: not measured faster on a CPU without native bf16')
    assert info['checkpoint'] == learned_model.checkpoint.name
    assert top1 == mmpretrain_scores.argmax(1).tolist()
    # Heat maps still work: they run the eager forward.
    assert info['explain'] is True and cam.status_code == 200
    assert cam.json()['label'] == FLOWER_CLASSES[
        mmpretrain_scores[4].argmax()]


@pytest.mark.parametrize('backend, file, precision', [
    ('onnxruntime', 'int8', 'int8'),
    ('auto', 'openvino_int8', 'int8, bfloat16 elsewhere'
     if cpu_has_native_bf16() else 'int8'),
])
def test_exports_served_with_pytorch_fp32_answers(
        cfg, learned_model, exported_model, mmpretrain_scores, backend,
        file, precision):
    app = create_app(cfg, str(exported_model.dir), device='cpu',
                     backend=backend)
    info, top1, cam = served_top1(app, learned_model)
    expected = getattr(exported_model, file)
    if backend == 'auto' and not cpu_has_native_bf16():
        expected, precision = exported_model.int8, 'int8'  # as before
    assert info['checkpoint'] == expected.name
    assert info['precision'] == precision
    assert info['backend'] == ('onnxruntime' if expected.suffix == '.onnx'
                               else 'openvino')
    assert info['explain'] is False and cam.status_code == 501
    agreement = np.mean(np.array(top1) == mmpretrain_scores.argmax(1))
    assert agreement >= 0.99, top1
