"""Cost of the image check that FlowerDataset runs before training.

    python benchmarks/check_images.py [--num N] [--workers W] [--quick]
        [--dir DIR]

Writes N photo-sized JPEGs (500x375, as benchmarks/throughput.py does;
default 3,000) in class folders, then times
``flower_mm.datasets.find_broken_images`` on them twice: the first check
(every file read and decoded; the files are in the page cache, having just
been written) and the second (every file known from the cache: one
``stat`` each). Prints one JSON line with the figures, the CPU time of the
first check and the machine's load average, which matters on a shared
machine. ``--quick``: 200 photos.
"""
import argparse
import json
import os
import os.path as osp
import shutil
import tempfile
import time

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))

from throughput_parts.photos import write_photos

from flower_mm.datasets.decoding import decode_workers
from flower_mm.datasets.image_check import cache_file_for, find_broken_images
from flower_mm.utils.machine import usable_cores


def measure(folder: str, workers: int) -> dict:
    paths = sorted(
        osp.join(root, name) for root, _, names in os.walk(folder)
        for name in names if name.endswith('.jpg'))
    # CPU time too: on a busy machine the wall time mostly measures the
    # other processes.
    cpu = time.process_time()
    first = find_broken_images(paths, folder, workers)
    first_cpu = time.process_time() - cpu
    cached = find_broken_images(paths, folder, workers)
    assert first.num_decoded == len(paths) and not first.broken
    assert cached.num_decoded == 0 and cached.num_cached == len(paths)
    return {
        'photos': len(paths),
        'workers': workers,
        'first_check_s': round(first.seconds, 3),
        'first_check_ms_per_photo': round(1000 * first.seconds / len(paths),
                                          3),
        'first_check_cpu_ms_per_photo': round(1000 * first_cpu / len(paths),
                                              3),
        'cached_check_s': round(cached.seconds, 3),
        'cores': usable_cores(),
        'load_average_1min': round(os.getloadavg()[0], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--num', type=int, default=3000,
                        help='photos to check (default 3000)')
    parser.add_argument('--workers', type=int, default=decode_workers(),
                        help='threads (default: the cores, up to 8)')
    parser.add_argument('--quick', action='store_true',
                        help='200 photos, a smoke run')
    parser.add_argument('--dir', help='write the photos here and keep them '
                        '(default: a temporary folder, removed)')
    args = parser.parse_args()
    num = 200 if args.quick else args.num
    root = args.dir or tempfile.mkdtemp(prefix='flower_check_images_')
    try:
        write_photos(root, num, 0)
        folder = osp.join(root, 'train')
        if osp.exists(cache_file_for(folder)):  # a kept --dir, run again
            os.remove(cache_file_for(folder))
        print(json.dumps(measure(folder, args.workers)))
    finally:
        if not args.dir:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == '__main__':
    main()
