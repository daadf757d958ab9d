"""The report: the machine, ratios between cases, the table, the plot."""
import os
import statistics

from .photos import PHOTO_SIZE

# The inference backends, measured like test/project (tools/test.py):
# their --backend, the export they run and extra --cfg-options.
BACKEND_CASES = {
    'test/pytorch-compiled': dict(backend='pytorch-compiled'),
    'test/onnxruntime fp32': dict(backend='onnxruntime', export='onnx'),
    'test/onnxruntime int8': dict(backend='onnxruntime',
                                  export='onnx-int8'),
    'test/openvino fp32': dict(backend='openvino', export='openvino',
                               extra_options=['test_cfg.fp16=False']),
    'test/openvino bf16': dict(backend='openvino', export='openvino',
                               precision='bfloat16'),
    'test/openvino int8': dict(backend='openvino', export='openvino-int8'),
}
# /proc/cpuinfo flags that decide bf16 and int8 speed, as Intel names them.
CPU_FEATURES = {
    'avx512_bf16': 'AVX512-BF16', 'amx_bf16': 'AMX-BF16',
    'amx_int8': 'AMX-INT8', 'avx512_vnni': 'AVX512-VNNI',
    'avx_vnni': 'AVX-VNNI', 'avx512f': 'AVX512F', 'avx2': 'AVX2',
}


def cpu_features() -> str:
    """Which of :data:`CPU_FEATURES` this CPU has, e.g. 'AVX512-BF16,
    AMX-BF16, ..., AVX2'; 'none of ...' when it has none."""
    try:
        with open('/proc/cpuinfo') as f:
            flags = set(next(line for line in f if line.startswith(
                'flags')).split(':', 1)[1].split())
    except (OSError, StopIteration):
        return 'unknown (no /proc/cpuinfo)'
    have = [name for flag, name in CPU_FEATURES.items() if flag in flags]
    return ', '.join(have) if have else 'none of ' + ', '.join(
        CPU_FEATURES.values())


def machine_description(device: str) -> str:
    """The machine the figures are of: CPU model and its bf16/int8
    features, cores, torch (and the GPU)."""
    import torch

    from flower_mm.utils.machine import cpu_model
    desc = (f'{cpu_model()} ({cpu_features()}), {os.cpu_count()} logical '
            f'cores, torch {torch.__version__}')
    if device == 'cuda':
        desc = f'{torch.cuda.get_device_name()}; {desc}'
    else:
        from flower_mm.utils import cpu_has_native_bf16
        desc += f', native bf16: {"yes" if cpu_has_native_bf16() else "no"}'
    return desc


def _per_round(a: dict, b: dict) -> float:
    """a/b in images/s: the median of each round's ratio (the cases of one
    round ran minutes apart, under the same load from other processes)."""
    return statistics.median(x / y for x, y in zip(
        a['rounds_images_per_s'], b['rounds_images_per_s']))


def ratios(results: dict) -> dict:
    """project/stock and project/plain, for training and inference; each
    backend's speed-up over the eager project (``test/<backend>``),
    ``train/compiled`` (compiled over eager training), ``run/compiled``
    (the eager whole run's time over the compiled one's) and
    ``onnx int8/fp32``."""
    out = {}
    for mode in ('train', 'test'):
        for other in ('stock', 'plain', 'plain + malloc tuning'):
            a = results.get(f'{mode}/project')
            b = results.get(f'{mode}/{other}')
            if a and b:
                out[f'{mode}/{other}'] = _per_round(a, b)
    eager = results.get('test/project')
    for name in BACKEND_CASES:
        if eager and name in results:
            out[name] = _per_round(results[name], eager)
    if 'train/project' in results and 'train/project compiled' in results:
        out['train/compiled'] = _per_round(results['train/project compiled'],
                                           results['train/project'])
    runs = [results.get(f'run/3 epochs {k}') for k in ('eager', 'compiled')]
    if all(runs):
        out['run/compiled'] = runs[0]['process_s'] / runs[1]['process_s']
    int8, fp32 = (results.get(f'test/onnxruntime {p}')
                  for p in ('int8', 'fp32'))
    if int8 and fp32:
        out['onnx int8/fp32'] = _per_round(int8, fp32)
    return out


def last_line(r: dict) -> list:
    """The report's last lines: the recipe ratios, then ``infer:
    best/eager X.XX (backend), int8/eager X.XX; train: compiled/eager
    X.XX``; a ratio whose cases did not run (``--only``) reads nan."""
    def ratio(key):
        return f'{r.get(key, float("nan")):.2f}'

    backends = {k: v for k, v in r.items() if k in BACKEND_CASES}
    best = max(backends, key=backends.get, default=None)
    int8 = max((v for k, v in backends.items() if k.endswith('int8')),
               default=float('nan'))
    return [
        f'train: project/stock {ratio("train/stock")}, '
        f'project/plain {ratio("train/plain")}; '
        f'infer: project/stock {ratio("test/stock")}, '
        f'project/plain {ratio("test/plain")}',
        f'infer: best/eager {ratio(best)} '
        f'({best[5:] if best else "none"}), int8/eager {int8:.2f}; '
        f'train: compiled/eager {ratio("train/compiled")}',
    ]


def print_pipelines(pipelines: dict) -> None:
    print(f'\ndata pipelines, CPU ms per {PHOTO_SIZE[0]}x{PHOTO_SIZE[1]} '
          'JPEG on one core:')
    for name, ms in pipelines['ms_per_image'].items():
        print(f'  {name:<28}{ms:7.2f}')
    steps = ', '.join(f'{k} {v:.2f}'
                      for k, v in pipelines['project_train_steps'].items())
    print(f'  project train steps: {steps}')
    pillow = pipelines['project_train_steps_pillow_jitter']['ColorJitter']
    print(f'  (MMPretrain\'s ColorJitter, Pillow backend: {pillow:.2f})')


def print_table(results: dict, batch_size: int) -> None:
    header = (f'{"case":<28}{"img/s":>9}{"rounds":>18}{"ms/iter":>9}'
              f'{"data ms":>9}{"1st batch s":>12}{"peak RSS MB":>13}'
              f'{"PSS MB":>9}')
    if any('cuda_peak_mb' in r for r in results.values()):
        header += f'{"GPU MB":>9}'
    print(header)
    for name, r in results.items():
        if name.startswith('epoch/'):
            continue
        rounds = ' '.join(f'{v:.1f}' for v in r['rounds_images_per_s'])
        line = (f'{name:<28}{r["images_per_s"]:>9.2f}{rounds:>18}'
                f'{r["iter_ms"]:>9.1f}{r["data_ms"]:>9.1f}'
                f'{r.get("first_iter_s", float("nan")):>12.1f}'
                f'{r["peak_rss_mb"]:>13.0f}{r["total_pss_mb"]:>9.0f}')
        if 'cuda_peak_mb' in r:
            line += f'{r["cuda_peak_mb"]:>9.0f}'
        print(line)
    epochs = {k: v for k, v in results.items() if k.startswith('epoch/')}
    if epochs:
        print('\ntime per epoch (project training, 2nd epoch):')
        for name, r in epochs.items():
            print(f'  {name[6:]:<16} {r["epoch_s"][-1]:7.2f} s')
    runs = {k: v for k, v in results.items() if k.startswith('run/')}
    if runs:
        print('\nwhole tools/train.py runs (process wall time, first '
              'batch = compile):')
        for name, r in runs.items():
            print(f'  {name[4:]:<20} {r["process_s"]:7.0f} s  first batch '
                  f'{r["first_iter_s"]:.0f} s, epochs '
                  + ', '.join(f'{e:.0f}' for e in r['epoch_s']) + ' s')


def plot(results: dict, path: str, title: str) -> None:
    """Left: images/s of each case (its best round). Right: the ratios the
    report prints (median of the per-round ratios, so measured side by
    side), the speed-ups over the eager project first."""
    import textwrap

    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    names = [n for n in results if not n.startswith(('epoch/', 'run/'))]
    speedups = {k[5:] if k.startswith('test/') else k: v
                for k, v in ratios(results).items()
                if k in BACKEND_CASES or k in ('train/compiled',
                                               'onnx int8/fp32')}
    fig, (ax, right) = plt.subplots(
        1, 2, figsize=(12, 0.35 * max(len(names), len(speedups)) + 2),
        gridspec_kw=dict(width_ratios=[3, 2]))
    values = [results[n]['images_per_s'] for n in names]
    colours = ['tab:orange' if n in BACKEND_CASES or 'compiled' in n else
               'tab:blue' if '/project' in n else 'tab:gray' for n in names]
    ax.barh(names[::-1], values[::-1], color=colours[::-1])
    for y, v in enumerate(values[::-1]):
        ax.text(v, y, f' {v:.1f}', va='center', fontsize=8)
    ax.set_xlabel('images/s (best round)')
    labels, gains = list(speedups)[::-1], list(speedups.values())[::-1]
    right.barh(labels, gains, color='tab:orange')
    right.axvline(1, color='black', linewidth=0.8)
    for y, v in enumerate(gains):
        right.text(v, y, f' {v:.2f}x', va='center', fontsize=8)
    right.set_xlabel('speed-up over eager, side by side\n'
                     '(median of the per-round ratios)')
    fig.suptitle('\n'.join(part for line in title.splitlines()
                           for part in textwrap.wrap(line, 110)), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
