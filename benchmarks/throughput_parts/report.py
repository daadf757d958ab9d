"""The report: the machine, ratios between cases, the table, the plot."""
import os
import statistics

from .photos import PHOTO_SIZE


def machine_description(device: str) -> str:
    import torch

    from flower_mm.utils.machine import cpu_model
    desc = (f'{cpu_model()}, {os.cpu_count()} logical cores, '
            f'torch {torch.__version__}')
    if device == 'cuda':
        desc = f'{torch.cuda.get_device_name()}; {desc}'
    else:
        from flower_mm.utils import cpu_has_native_bf16
        desc += f', native bf16: {"yes" if cpu_has_native_bf16() else "no"}'
    return desc


def ratios(results: dict) -> dict:
    """project/stock and project/plain, for training and inference; for
    the ONNX cases, onnx/project (their speed-up).

    With several rounds, the median of each round's ratio: cases of one
    round ran minutes apart, under the same load from other processes.
    """
    out = {}
    for mode in ('train', 'test'):
        for other in ('stock', 'plain', 'plain + malloc tuning'):
            a = results.get(f'{mode}/project')
            b = results.get(f'{mode}/{other}')
            if a and b:
                out[f'{mode}/{other}'] = statistics.median(
                    x / y for x, y in zip(a['rounds_images_per_s'],
                                          b['rounds_images_per_s']))
    project = results.get('test/project')
    for variant in ('fp32', 'int8'):
        onnx = results.get(f'test/onnx {variant}')
        if project and onnx:
            out[f'test/onnx {variant}'] = statistics.median(
                x / y for x, y in zip(onnx['rounds_images_per_s'],
                                      project['rounds_images_per_s']))
    return out


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
              f'{"data ms":>9}{"peak RSS MB":>13}{"PSS MB":>9}')
    if any('cuda_peak_mb' in r for r in results.values()):
        header += f'{"GPU MB":>9}'
    print(header)
    for name, r in results.items():
        if name.startswith('epoch/'):
            continue
        rounds = ' '.join(f'{v:.1f}' for v in r['rounds_images_per_s'])
        line = (f'{name:<28}{r["images_per_s"]:>9.2f}{rounds:>18}'
                f'{r["iter_ms"]:>9.1f}'
                f'{r["data_ms"]:>9.1f}{r["peak_rss_mb"]:>13.0f}'
                f'{r["total_pss_mb"]:>9.0f}')
        if 'cuda_peak_mb' in r:
            line += f'{r["cuda_peak_mb"]:>9.0f}'
        print(line)
    epochs = {k: v for k, v in results.items() if k.startswith('epoch/')}
    if epochs:
        print('\ntime per epoch (project training, 2nd epoch):')
        for name, r in epochs.items():
            print(f'  {name[6:]:<16} {r["epoch_s"][-1]:7.2f} s')


def plot(results: dict, path: str, title: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    names = [n for n in results if not n.startswith('epoch/')]
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(names) + 1.5))
    values = [results[n]['images_per_s'] for n in names]
    colours = ['tab:blue' if '/project' in n else 'tab:gray' for n in names]
    ax.barh(names[::-1], values[::-1], color=colours[::-1])
    for y, v in enumerate(values[::-1]):
        ax.text(v, y, f' {v:.1f}', va='center', fontsize=8)
    ax.set_xlabel('images/s')
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
