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
    def case(*rounds, process_s=None):
        return dict(rounds_images_per_s=list(rounds), process_s=process_s)

    results = {
        'train/project': case(20, 30, 25),
        'train/stock': case(10, 10, 5),  # per round: 2, 3, 5
        'train/plain': case(20, 20, 25),  # 1, 1.5, 1
        'train/plain + malloc tuning': case(40, 15, 25),  # 0.5, 2, 1
        'train/project compiled': case(30, 30, 25),  # 1.5, 1, 1
        'test/project': case(60, 40),
        'test/stock': case(20, 20),  # 3, 2
        'test/onnxruntime fp32': case(30, 40),  # 0.5, 1
        'test/onnxruntime int8': case(90, 80),  # 1.5, 2
        'test/openvino int8': case(240, 200),  # 4, 5
        'run/3 epochs eager': case(1, process_s=300.),
        'run/3 epochs compiled': case(1, process_s=250.),
    }
    assert throughput.ratios(results) == {
        'train/stock': 3.0,
        'train/plain': 1.0,
        'train/plain + malloc tuning': 1.0,
        'test/stock': 2.5,
        'test/onnxruntime fp32': 0.75,
        'test/onnxruntime int8': 1.75,
        'test/openvino int8': 4.5,
        'train/compiled': 1.0,
        'run/compiled': 1.2,
        'onnx int8/fp32': 2.5,  # per round: 3, 2
    }


def test_last_lines_name_the_best_backend(throughput):
    ratios = {'train/stock': 2.861, 'train/plain': 1.14, 'test/stock': 3.62,
              'test/plain': 1.08, 'test/onnxruntime int8': 1.796,
              'test/openvino int8': 5.514, 'test/openvino bf16': 3.2,
              'test/pytorch-compiled': 3.01, 'train/compiled': 1.254}
    assert throughput.last_line(ratios) == [
        'train: project/stock 2.86, project/plain 1.14; infer: '
        'project/stock 3.62, project/plain 1.08',
        'infer: best/eager 5.51 (openvino int8), int8/eager 5.51; train: '
        'compiled/eager 1.25']
    ratios['test/openvino int8'] = 1.2
    assert throughput.last_line(ratios)[-1] == (
        'infer: best/eager 3.20 (openvino bf16), int8/eager 1.80; train: '
        'compiled/eager 1.25')
    # --only test/: the training ratios did not run.
    assert throughput.last_line({'test/onnxruntime int8': 1.5}) == [
        'train: project/stock nan, project/plain nan; infer: project/stock '
        'nan, project/plain nan',
        'infer: best/eager 1.50 (onnxruntime int8), int8/eager 1.50; '
        'train: compiled/eager nan']


def test_machine_names_the_cpu_and_its_bf16_and_int8_features(
        throughput, monkeypatch, tmp_path):
    import throughput_parts.report as report
    cpuinfo = tmp_path / 'cpuinfo'
    cpuinfo.write_text('model name\t: Some Xeon\nflags\t\t: fpu avx2 '
                       'avx512f avx512_vnni avx512_bf16 amx_bf16 amx_tile '
                       'amx_int8\n')
    real_open = open
    monkeypatch.setattr(report, 'open', lambda path, *a, **k: real_open(
        cpuinfo if path == '/proc/cpuinfo' else path, *a, **k),
        raising=False)
    assert report.cpu_features() == ('AVX512-BF16, AMX-BF16, AMX-INT8, '
                                     'AVX512-VNNI, AVX512F, AVX2')
    cpuinfo.write_text('flags\t\t: fpu avx2 fma\n')  # an AVX2-only CPU
    assert report.cpu_features() == 'AVX2'
    monkeypatch.undo()
    described = throughput.machine_description('cpu')
    assert '(' in described and 'native bf16: ' in described
    assert ('AVX512-BF16' in described) == cpu_has_native_bf16() or \
        'AMX-BF16' in described


def plan(throughput, quick, device, emulate_avx2=False):
    args = SimpleNamespace(quick=quick, rounds=None, iters=None,
                           batch_size=16, emulate_avx2=emulate_avx2)
    return {c['name']: c for c in throughput.plan_cases(args, device)}


def test_quick_plan_is_the_main_cases_and_every_backend(throughput):
    cases = plan(throughput, quick=True, device='cpu')
    assert list(cases) == [
        'train/stock', 'train/project', 'train/plain', 'test/stock',
        'test/project', 'test/plain', 'train/project compiled',
        'test/pytorch-compiled', 'test/onnxruntime fp32',
        'test/onnxruntime int8', 'test/openvino fp32'
    ] + (['test/openvino bf16'] if cpu_has_native_bf16() else []) + [
        'test/openvino int8']
    # The backends run tools/test.py like test/project, on the same JPEGs.
    for name in ('test/openvino int8', 'test/pytorch-compiled'):
        assert cases[name]['recipe'] == 'project'
        assert cases[name]['num_images'] == cases['test/project'][
            'num_images']
    assert cases['test/openvino int8']['export'] == 'openvino-int8'
    assert cases['test/onnxruntime int8']['export'] == 'onnx-int8'
    assert cases['test/openvino fp32']['extra_options'] == [
        'test_cfg.fp16=False']
    assert cases['train/project compiled']['extra_options'] == [
        'compile=True']
    gpu = plan(throughput, quick=True, device='cuda')
    assert not any(c.get('export') for c in gpu.values())
    assert 'test/pytorch-compiled' in gpu
    assert all(c['rounds'] == 3 for c in cases.values())
    # 3 warm-up and 8 measured batches of 16 for training.
    assert cases['train/project']['num_images'] == 11 * 16
    # (c) in the main comparison is the minimal loop, untuned.
    assert not cases['train/plain'].get('malloc_tuning')


def test_avx2_emulation_limits_pytorch_and_leaves_the_runtimes_out(
        throughput):
    cases = plan(throughput, quick=True, device='cpu', emulate_avx2=True)
    assert list(cases) == ['train/project', 'train/plain', 'test/project',
                           'test/plain', 'train/project compiled',
                           'test/pytorch-compiled']
    for case in cases.values():
        assert case['env'] == {'ONEDNN_MAX_CPU_ISA': 'AVX2',
                               'ATEN_CPU_CAPABILITY': 'avx2'}
        # float32, as the project picks on a CPU without native bf16
        assert case['extra_options'][-2:] == ['optim_wrapper.dtype=float32',
                                              'test_cfg.fp16=False']


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
    # Whole runs of 3 epochs on a flower-sized split, the compiled one
    # from a cold compile cache.
    runs = {n: c for n, c in cases.items() if n.startswith('run/')}
    assert list(runs) == ['run/3 epochs eager', 'run/3 epochs compiled']
    for run, compile_ in zip(runs.values(), ('False', 'True')):
        assert (run['num_images'], run['val_images'], run['epochs']) == (
            2278, 570, 3)
        assert run['extra_options'] == [f'compile={compile_}']
        assert run['cold_compile_cache']
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


def test_chart_has_the_cases_and_the_side_by_side_speedups(throughput,
                                                          tmp_path):
    import cv2

    def case(*rounds):
        return dict(rounds_images_per_s=list(rounds),
                    images_per_s=max(rounds))

    results = {'test/project': case(60, 40), 'test/openvino int8': case(
        240, 200), 'train/project': case(20), 'train/project compiled':
        case(25)}
    path = tmp_path / 'throughput.png'
    throughput.plot(results, str(path), 'a machine, ' * 30 + '\nbatch 16')
    image = cv2.imread(str(path))
    # two panels side by side: images/s and speed-ups
    assert image.shape[1] == 1440 and image.std() > 10
