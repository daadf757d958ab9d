"""benchmarks/throughput.py: its arithmetic, its case plan and its plain loop.

The figures themselves are measured by running the script, not here.
"""
from types import SimpleNamespace

import pytest

from flower_mm.utils import cpu_has_native_bf16


@pytest.fixture(scope='module')
def throughput():
    # benchmarks/ is on the tests' path (pyproject.toml), as it is on a
    # script's run as `python benchmarks/throughput.py`.
    import throughput
    return throughput


def test_clock_excludes_warmup_and_splits_data_wait(throughput):
    clock = throughput.IterClock(batch_size=4, warmup=1, device='cpu',
                                 total=99)
    # Iterations of 1 s of work each, with 0.5 s waits for data before the
    # second and the third.
    clock.starts, clock.ends = [0.0, 1.5, 3.0], [1.0, 2.5, 4.0]
    result = clock.result()
    assert result['measured_iters'] == 2
    assert result['images_per_s'] == pytest.approx(8 / 3.0)
    assert result['iter_ms'] == pytest.approx(1500)
    assert result['data_ms'] == pytest.approx(500)
    clock.starts, clock.ends = [0.0, 1.5], [1.0, 2.5]
    with pytest.raises(RuntimeError, match='only 2 iterations ran; 1 are'):
        clock.result()


def test_ratios_are_medians_of_per_round_ratios(throughput):
    def case(*rounds):
        return dict(rounds_images_per_s=list(rounds))

    results = {
        'train/project': case(20, 30, 25),
        'train/stock': case(10, 10, 5),  # per round: 2, 3, 5
        'train/plain': case(20, 20, 25),  # 1, 1.5, 1
        'train/plain + malloc tuning': case(40, 15, 25),  # 0.5, 2, 1
        'test/project': case(60, 40),
        'test/stock': case(20, 20),  # 3, 2
        'test/onnx int8': case(90, 80),  # per round: 1.5, 2
    }
    assert throughput.ratios(results) == {
        'train/stock': 3.0,
        'train/plain': 1.0,
        'train/plain + malloc tuning': 1.0,
        'test/stock': 2.5,
        'test/onnx int8': 1.75,
    }


def test_last_line_gains_the_int8_speedup(throughput):
    ratios = {'train/stock': 2.861, 'train/plain': 1.14, 'test/stock': 3.62,
              'test/plain': 1.08, 'test/onnx int8': 1.796}
    assert throughput.last_line(ratios) == (
        'train: project/stock 2.86, project/plain 1.14; infer: '
        'project/stock 3.62, project/plain 1.08, int8/project 1.80')
    # --only test/: the training ratios did not run.
    assert throughput.last_line({'test/onnx int8': 1.5}).startswith(
        'train: project/stock nan, project/plain nan; infer:')


def plan(throughput, quick, device):
    args = SimpleNamespace(quick=quick, rounds=None, iters=None,
                           batch_size=16)
    return {c['name']: c for c in throughput.plan_cases(args, device)}


def test_quick_plan_is_the_main_cases(throughput):
    cases = plan(throughput, quick=True, device='cpu')
    assert list(cases) == [
        'train/stock', 'train/project', 'train/plain', 'test/stock',
        'test/project', 'test/plain', 'test/onnx fp32', 'test/onnx int8'
    ]
    # The ONNX cases run tools/test.py like test/project, on the export.
    assert cases['test/onnx int8']['recipe'] == 'project'
    assert cases['test/onnx int8']['onnx'] == 'int8'
    assert cases['test/onnx int8']['num_images'] == cases[
        'test/project']['num_images']
    assert not any('onnx' in name
                   for name in plan(throughput, quick=True, device='cuda'))
    assert all(c['rounds'] == 3 for c in cases.values())
    # 3 warm-up and 8 measured batches of 16 for training.
    assert cases['train/project']['num_images'] == 11 * 16
    # (c) in the main comparison is the minimal loop, untuned.
    assert not cases['train/plain'].get('malloc_tuning')


def test_full_cpu_plan_separates_framework_from_allocator(throughput):
    cases = plan(throughput, quick=False, device='cpu')
    for mode in ('train', 'test'):
        tuned = cases[f'{mode}/plain + malloc tuning']
        assert tuned['recipe'] == 'plain' and tuned['malloc_tuning']
        assert cases[f'{mode}/project no malloc tuning'][
            'extra_options'] == ['default_hooks.malloc_tuning.enabled=False']
        assert cases[f'{mode}/model only']['malloc_tuning']
    epochs = {n: c for n, c in cases.items() if n.startswith('epoch/')}
    assert sorted((c['batch_size'], c['num_images'])
                  for c in epochs.values()) == [(8, 320), (16, 160),
                                                (16, 320), (32, 320)]
    gpu = plan(throughput, quick=True, device='cuda')
    assert not any('malloc' in name for name in gpu)
    assert 'train/project fp32' in gpu  # GPU runs always add the variants


def test_plain_case_applies_the_project_allocator_settings(
        throughput, tmp_path, monkeypatch):
    from flower_mm.engine.hooks import MallocTuningHook
    calls = []
    original = MallocTuningHook.before_run

    def recording_before_run(self, runner):
        calls.append(self.mmap_threshold)
        return original(self, runner)

    monkeypatch.setattr(MallocTuningHook, 'before_run', recording_before_run)
    data_root = tmp_path / 'data'
    throughput.write_photos(str(data_root), num_train=6, num_val=6)
    checkpoint = tmp_path / 'init.pth'
    throughput.write_checkpoint(str(checkpoint))
    case = dict(name='train/plain + malloc tuning', mode='train',
                recipe='plain', device='cpu', batch_size=2, warmup=1,
                num_images=6, data_root=str(data_root),
                checkpoint=str(checkpoint), malloc_tuning=True,
                extra_options=['optim_wrapper.dtype=float32'])
    result = throughput.run_case(case)
    assert calls == [32 * 2**20]
    assert result['measured_iters'] == 2
    assert result['images_per_s'] > 0
    assert len(result['epoch_s']) == 1
    assert result['peak_rss_mb'] > 100  # ResNet-50 was really built
    # the case's options, merged into the project's config
    assert result['autocast'] == 'float32'
    assert result['channels_last']

    # Inference reads test_cfg.fp16 ('auto') as tools/test.py does.
    result = throughput.run_case(dict(
        case, name='test/plain', mode='test', malloc_tuning=False,
        extra_options=['default_hooks.channels_last.enabled=False']))
    assert result['autocast'] == ('bfloat16'
                                  if cpu_has_native_bf16() else 'float32')
    assert not result['channels_last']
    assert calls == [32 * 2**20]  # not tuned this time
