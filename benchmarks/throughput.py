"""Images/s, training and inference: stock recipe, project, plain PyTorch.

    python benchmarks/throughput.py [--quick] [--device {auto,cpu,cuda}]
        [--out-dir DIR] [--batch-size N] [--keep-data] [--only PREFIX...]

Measures, one after the other on this machine, each in a fresh process and
on the same JPEG files (500x375 photos written to a temporary folder):

(a) ``stock``: MMPretrain's ``resnet/resnet50_8xb32_in1k.py`` recipe (fp32,
    its data pipeline and loader settings) through MMEngine's Runner, with
    the project's model (ResNet-50, stages up to 2 frozen, 5 classes);
(b) ``project``: ``tools/train.py`` / ``tools/test.py`` on
    ``configs/resnet50_flowers.py`` with its defaults;
(c) ``plain``: a minimal PyTorch loop (torchvision decoding and transforms,
    a torch DataLoader with the project's loader settings) with the same
    model, batch, precision and memory format as (b);
(d) on a CPU, ``onnx fp32`` and ``onnx int8``: inference of (b)'s model
    exported by ``tools/export.py`` (int8 calibrated on the training JPEGs,
    its top-1 agreement with PyTorch float32 measured on the validation
    JPEGs), through ``tools/test.py`` like (b);

for training and for inference, after warm-up iterations, with the time
spent waiting for data. Without ``--quick`` it adds the project's precision
and memory-format variants, a model-only ceiling on synthetic batches, the
loader's worker count, (c) with the allocator settings of the project's
``MallocTuningHook`` (so that the framework's own cost shows apart from the
allocator's gain; on a CPU), and how the time per epoch grows with batch
size and dataset size. On a GPU the variants always run. Results go to
``--out-dir`` as ``throughput.json`` and ``throughput.png``; the last line
printed is

    train: project/stock X.XX, project/plain Y.YY; infer: project/stock ...,
    int8/project Z.ZZ

The parts live in ``benchmarks/throughput_parts/``: ``photos`` (data and
model), ``clock`` (what a case measures), one module per case runner
(``runner_case``, ``plain_case``, ``pipeline_case``, ``onnx_case``) and
``report``; this file plans the cases and runs each in its own process.
"""
import argparse
import json
import os
import os.path as osp
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))

# IterClock: tests/test_benchmarks.py checks it through this module.
from throughput_parts.clock import IterClock  # noqa: F401
from throughput_parts.onnx_case import run_export_case
from throughput_parts.photos import (PHOTO_SIZE, UNIQUE_PHOTOS,
                                     write_checkpoint, write_photos)
from throughput_parts.pipeline_case import run_pipeline_case
from throughput_parts.plain_case import run_plain_case
from throughput_parts.report import (machine_description,
                                     plot, print_pipelines, print_table,
                                     ratios)
from throughput_parts.runner_case import run_runner_case

# Photos to calibrate the int8 model on, and to compare it with PyTorch on.
CALIB_IMAGES = dict(quick=32, full=128)
VERIFY_IMAGES = dict(quick=64, full=256)


def run_case(case: dict) -> dict:
    if case['recipe'] == 'export':
        return run_export_case(case)
    if case['recipe'] == 'pipelines':
        return run_pipeline_case(case)
    if case['recipe'] == 'plain':
        return run_plain_case(case)
    return run_runner_case(case)


# ----------------------------------------------------------- orchestration


def plan_cases(args, device: str) -> list:
    """The cases to measure, in order; each runs in its own process.

    Cases with ``rounds`` > 1 are measured that many times, interleaved with
    the others, and keep their best round: other processes on a small
    machine slow single rounds down by 20 % and more.
    """
    quick, gpu = args.quick, device == 'cuda'
    if gpu:  # (warm-up, measured) iterations for training and inference
        iters = dict(train=(6, 24), test=(6, 24)) if quick else dict(
            train=(10, 100), test=(10, 100))
        rounds = 1
    else:
        iters = dict(train=(3, 8), test=(3, 16)) if quick else dict(
            train=(4, 16), test=(4, 32))
        rounds = 3
    rounds = args.rounds or rounds
    bs = args.batch_size

    def case(name, mode, recipe, **kwargs):
        warmup, measured = iters[mode]
        measured = args.iters or measured
        return dict(dict(
            name=name, mode=mode, recipe=recipe, device=device,
            batch_size=bs, warmup=warmup, rounds=rounds,
            num_images=(warmup + measured) * bs), **kwargs)

    cases = [
        case(f'{mode}/{recipe}', mode, recipe)
        for mode in ('train', 'test')
        for recipe in ('stock', 'project', 'plain')
    ]
    if not gpu:
        # The ONNX backend runs on onnxruntime's CPU provider.
        cases += [
            case(f'test/onnx {variant}', 'test', 'project', onnx=variant)
            for variant in ('fp32', 'int8')
        ]
    if gpu or not quick:
        fp32 = ['optim_wrapper.dtype=float32', 'test_cfg.fp16=False']
        nchw = ['default_hooks.channels_last.enabled=False']
        train_variants = [('fp32', fp32), ('NCHW', nchw)]
        test_variants = [('fp32', fp32)]
        if not quick:
            train_variants.append(('fp32 NCHW', fp32 + nchw))
            test_variants.append(('NCHW', nchw))
        if gpu:
            train_variants += [
                ('bf16', ['optim_wrapper.dtype=bfloat16']),
                ('pin_memory', ['train_dataloader.pin_memory=True']),
                ('8 workers', ['train_dataloader.num_workers=8']),
            ]
        else:
            no_malloc = ['default_hooks.malloc_tuning.enabled=False']
            train_variants += [
                ('no malloc tuning', no_malloc),
                ('4 workers', ['train_dataloader.num_workers=4']),
                ('8 workers', ['train_dataloader.num_workers=8']),
            ]
            test_variants.append(('no malloc tuning', no_malloc))
        for mode, variants in (('train', train_variants),
                               ('test', test_variants)):
            cases += [
                case(f'{mode}/project {label}', mode, 'project',
                     extra_options=opts) for label, opts in variants
            ]
            # The model alone on one batch kept in memory: the ceiling
            # the data loader must not lower.
            cases.append(case(f'{mode}/model only', mode, 'plain',
                              synthetic=True, malloc_tuning=not gpu))
            if not gpu:
                # (c) with the project's allocator settings: what the
                # framework itself costs, apart from MallocTuningHook.
                cases.append(case(f'{mode}/plain + malloc tuning', mode,
                                  'plain', malloc_tuning=True))
    if not quick:
        # Time per epoch (the second of two: persistent workers started).
        n = (iters['train'][0] + iters['train'][1]) * bs
        for batch, images in ((bs, n // 2), (bs, n), (bs // 2, n),
                              (bs * 2, n)):
            cases.append(dict(
                case(f'epoch/bs{batch} n{images}', 'train', 'project'),
                batch_size=batch, num_images=images, warmup=1, epochs=2,
                rounds=1))
    return cases


def launch(case: dict, log_dir: str) -> dict:
    """Run one case in a fresh Python process; return its result."""
    log = osp.join(log_dir, osp.basename(case['work_dir']) + '_' +
                   case['name'].replace('/', '_').replace(' ', '_') + '.log')
    with open(log, 'w') as f:
        proc = subprocess.run(
            [sys.executable, __file__, '--run-case', json.dumps(case)],
            stdout=f, stderr=subprocess.STDOUT, cwd=case['work_dir'])
    with open(log) as f:
        lines = f.read().splitlines()
    results = [ln for ln in lines if ln.startswith('RESULT ')]
    if proc.returncode != 0 or not results:
        tail = '\n'.join(lines[-30:])
        raise RuntimeError(
            f'case {case["name"]} failed (exit {proc.returncode}); log: '
            f'{log}\n{tail}')
    return json.loads(results[-1][len('RESULT '):])


def save_summary(args, device: str, results: dict, pipelines: dict,
                 int8_check: dict, started: float, partial: bool) -> dict:
    """Write throughput.json (after every case: a cut-off run keeps them)."""
    os.makedirs(args.out_dir, exist_ok=True)
    summary = dict(
        machine=machine_description(device),
        device=device,
        date=datetime.now().isoformat(timespec='seconds'),
        batch_size=args.batch_size,
        quick=args.quick,
        partial=partial,
        wall_s=time.perf_counter() - started,
        ratios=ratios(results),
        results=results,
        pipelines=pipelines,
        int8_check=int8_check)
    with open(osp.join(args.out_dir, 'throughput.json'), 'w') as f:
        json.dump(summary, f, indent=2)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--quick', action='store_true',
                        help='the main cases only, fewer iterations')
    parser.add_argument('--device', choices=['auto', 'cpu', 'cuda'],
                        default='auto')
    parser.add_argument('--batch-size', type=int,
                        help='default: 16 on a CPU, 32 on a GPU')
    parser.add_argument('--out-dir', default='work_dirs/benchmarks',
                        help='where throughput.json/png go')
    parser.add_argument('--keep-data', action='store_true',
                        help='keep the generated JPEGs and logs')
    parser.add_argument('--log-dir',
                        help='keep each case\'s log here (default: with '
                        'the data, removed at the end)')
    parser.add_argument('--rounds', type=int,
                        help='measure each main case this many times and '
                        'keep the best (default: 3 on a CPU, 1 on a GPU)')
    parser.add_argument('--only', nargs='+', metavar='PREFIX',
                        help='only the cases whose name starts so, e.g. '
                        '"test/" for inference alone')
    parser.add_argument('--iters', type=int, help=argparse.SUPPRESS)
    parser.add_argument('--run-case', help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.run_case:
        case = json.loads(args.run_case)
        if case['device'] == 'cpu':
            os.environ['CUDA_VISIBLE_DEVICES'] = ''
        print('RESULT ' + json.dumps(run_case(case)), flush=True)
        return

    import torch
    device = args.device
    if device == 'auto':
        device = 'cuda' if torch.cuda.is_available() else 'cpu'
    if device == 'cuda' and not torch.cuda.is_available():
        sys.exit('error: --device cuda, but torch sees no CUDA GPU.')
    args.batch_size = args.batch_size or (32 if device == 'cuda' else 16)
    cases = plan_cases(args, device)
    if args.only:
        cases = [c for c in cases if c['name'].startswith(tuple(args.only))]
        if not cases:
            sys.exit(f'error: --only {" ".join(args.only)} matches no case.')

    tmp = tempfile.mkdtemp(prefix='flower_bench_')
    log_dir = args.log_dir or tmp
    os.makedirs(log_dir, exist_ok=True)
    started = time.perf_counter()
    try:
        data_root = osp.join(tmp, 'data')
        most = max(c['num_images'] for c in cases)
        print(f'Writing {most} train and {most} val JPEGs of '
              f'{PHOTO_SIZE[0]}x{PHOTO_SIZE[1]} to {data_root} ...',
              flush=True)
        write_photos(data_root, most, most)
        checkpoint = osp.join(tmp, 'resnet50_flowers_init.pth')
        write_checkpoint(checkpoint)
        export_dir = osp.join(tmp, 'export')
        int8_check = None
        if any(c.get('onnx') for c in cases):
            size = 'quick' if args.quick else 'full'
            print('Exporting to ONNX float32 and int8 (calibrated on '
                  f'{CALIB_IMAGES[size]} JPEGs) ...', flush=True)
            int8_check = launch(
                dict(name='export', recipe='export', device='cpu',
                     data_root=data_root, checkpoint=checkpoint,
                     num_images=most, batch_size=args.batch_size,
                     export_dir=export_dir, work_dir=tmp,
                     calib_images=CALIB_IMAGES[size],
                     verify_images=VERIFY_IMAGES[size]), log_dir)
        print('Timing the data pipelines on one core ...', flush=True)
        pipelines = launch(
            dict(name='pipelines', recipe='pipelines', device=device,
                 data_root=data_root, count=UNIQUE_PHOTOS,
                 work_dir=tmp), log_dir)
        results, runs = {}, []
        for round_ in range(max(c['rounds'] for c in cases)):
            runs += [c for c in cases if c['rounds'] > round_]
        for i, case in enumerate(runs, 1):
            case = dict(case, data_root=data_root, checkpoint=checkpoint,
                        export_dir=export_dir,
                        work_dir=osp.join(tmp, f'run{i}'))
            os.makedirs(case['work_dir'])
            t0 = time.perf_counter()
            r = launch(case, log_dir)
            best = results.get(case['name'])
            r['rounds_images_per_s'] = (
                best['rounds_images_per_s'] if best else []) + [
                    r['images_per_s']]
            if best is None or r['images_per_s'] > best['images_per_s']:
                results[case['name']] = r
            else:
                best['rounds_images_per_s'] = r['rounds_images_per_s']
            save_summary(args, device, results, pipelines, int8_check,
                         started, partial=True)
            print(f'[{i}/{len(runs)}] {case["name"]:<28} '
                  f'{r["images_per_s"]:8.2f} img/s  (data '
                  f'{r["data_ms"]:.0f} of {r["iter_ms"]:.0f} ms/iter; '
                  f'{time.perf_counter() - t0:.0f} s)', flush=True)
    finally:
        if args.keep_data:
            print(f'data and logs kept in {tmp}')
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    summary = save_summary(args, device, results, pipelines, int8_check,
                           started, partial=False)
    machine = summary['machine']
    plot(results, osp.join(args.out_dir, 'throughput.png'),
         f'{machine}\nbatch {args.batch_size}, {summary["date"]}')

    print(f'\n{machine}; batch {args.batch_size}; '
          f'{summary["wall_s"]:.0f} s; results in {args.out_dir}')
    print_table(results, args.batch_size)
    print_pipelines(pipelines)
    if int8_check:
        print(f'\nint8 vs PyTorch float32 on {int8_check["num_images"]} '
              f'validation JPEGs: top-1 agreement '
              f'{100 * int8_check["top1_agreement"]:.1f} %, max |score '
              f'difference| {int8_check["max_abs_diff_scores"]:.3f}')
    r = summary['ratios']
    if 'train/plain + malloc tuning' in r:
        print('project / plain loop with the same allocator settings: '
              f'train {r["train/plain + malloc tuning"]:.2f}, infer '
              f'{r.get("test/plain + malloc tuning", float("nan")):.2f}')
    print(last_line(r))


def last_line(r: dict) -> str:
    """``train: project/stock X.XX, ...; infer: ..., int8/project X.XX``;
    a ratio whose cases did not run (``--only``) reads nan."""
    def ratio(key):
        return f'{r.get(key, float("nan")):.2f}'

    line = (f'train: project/stock {ratio("train/stock")}, '
            f'project/plain {ratio("train/plain")}; '
            f'infer: project/stock {ratio("test/stock")}, '
            f'project/plain {ratio("test/plain")}')
    if 'test/onnx int8' in r:
        line += f', int8/project {ratio("test/onnx int8")}'
    return line


if __name__ == '__main__':
    main()
