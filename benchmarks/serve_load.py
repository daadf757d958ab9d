"""Load test of tools/serve.py: concurrent clients against a local server.

    python benchmarks/serve_load.py [--clients 8] [--duration 30]
        [--photos 64] [--files-per-request 1] [--device auto|cpu|cuda]
        [--config CFG --checkpoint CKPT] [--quick] [--out FILE.json]

On the same JPEG files (the 500x375 photos of benchmarks/throughput.py), in
one run and one after the other:

1. ``infer``: the path of ``tools/infer.py`` (BatchImageClassifier.predict,
   batch 16, in this process) over all photos, after a warm-up batch;
2. ``served``: ``tools/serve.py`` started on a free port of 127.0.0.1, then
   ``--clients`` threads each posting photos in a loop (keep-alive, one
   request at a time each); the requests that complete in ``--duration``
   seconds after a warm-up count.

Prints requests/s, images/s, p50/p95 latency and errors, and last
``served/infer images/s: X.XX``. Without --checkpoint, the project's model
with freshly initialised weights is used (speed does not depend on them).
"""
import argparse
import json
import os
import os.path as osp
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))

from throughput_parts.photos import (PROJECT_CONFIG,
                                     write_checkpoint, write_photos)


def infer_images_per_s(config, checkpoint, paths, device) -> dict:
    """tools/infer.py's path over ``paths``: images/s after a warm-up."""
    from flower_mm.apis import BatchImageClassifier
    classifier = BatchImageClassifier(config, checkpoint, device)
    items = [(p, None) for p in paths]
    classifier.predict(items[:16], topk=5, batch_size=16, progress=False)
    start = time.perf_counter()
    results = classifier.predict(items, topk=5, batch_size=16,
                                 progress=False)
    elapsed = time.perf_counter() - start
    errors = sum(r['error'] is not None for r in results)
    return dict(images=len(paths), seconds=elapsed,
                images_per_s=len(paths) / elapsed, errors=errors,
                precision=classifier.precision, device=classifier.device)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def start_server(config, checkpoint, device, max_batch, log_path):
    port = free_port()
    log = open(log_path, 'w')
    proc = subprocess.Popen(
        [sys.executable, osp.join(REPO_ROOT, 'tools', 'serve.py'), config,
         checkpoint, '--port', str(port), '--device', device,
         '--max-batch', str(max_batch)],
        stdout=log, stderr=subprocess.STDOUT)
    url = f'http://127.0.0.1:{port}'
    deadline = time.monotonic() + 300
    while True:
        if proc.poll() is not None:
            log.close()
            with open(log_path) as f:
                sys.exit(f'error: tools/serve.py exited {proc.returncode}:\n'
                         f'{f.read()[-3000:]}')
        try:
            with urllib.request.urlopen(url + '/health', timeout=2):
                return proc, url, log
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                sys.exit('error: tools/serve.py did not answer /health in '
                         '300 s')
            time.sleep(0.2)


def warm_up_server(url, photos) -> None:
    """One request with a batch of photos (first-call costs out of the
    measurement, as infer's warm-up batch)."""
    import httpx
    response = httpx.post(url + '/predict', timeout=600, files=[
        ('files', (name, data, 'image/jpeg')) for name, data in photos])
    response.raise_for_status()


def run_clients(url, photos, clients, duration, files_per_request,
                warmup_s) -> dict:
    """``clients`` threads posting photos for ``warmup_s + duration``; the
    requests that complete within the last ``duration`` seconds count."""
    import httpx
    measure_from = time.perf_counter() + warmup_s
    stop_at = measure_from + duration
    records, errors, lock = [], [], threading.Lock()

    def client(index):
        position = index * files_per_request
        with httpx.Client(base_url=url, timeout=300) as http:
            while time.perf_counter() < stop_at:
                batch = [photos[(position + i) % len(photos)]
                         for i in range(files_per_request)]
                position += files_per_request * clients
                t0 = time.perf_counter()
                try:
                    response = http.post('/predict', files=[
                        ('files', (name, data, 'image/jpeg'))
                        for name, data in batch])
                    if response.status_code == 200:
                        why = next((r['error'] for r in response.json()[
                            'results'] if r['error']), '')
                    else:
                        why = f'HTTP {response.status_code}: {response.text}'
                    failed = bool(why)
                except Exception as err:  # counted, and the run goes on
                    failed, why = True, f'{type(err).__name__}: {err}'
                t1 = time.perf_counter()
                if measure_from <= t1 <= stop_at:
                    with lock:
                        records.append((t1 - t0, 0 if failed else len(batch)))
                        if failed:
                            errors.append(why)

    threads = [threading.Thread(target=client, args=(i, ))
               for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    latencies = sorted(r[0] for r in records)

    def percentile(q):
        return latencies[min(len(latencies) - 1,
                             int(q * len(latencies)))] if latencies else 0.

    return dict(
        clients=clients, seconds=duration, requests=len(records),
        requests_per_s=len(records) / duration,
        images_per_s=sum(n for _, n in records) / duration,
        p50_ms=1e3 * percentile(0.5), p95_ms=1e3 * percentile(0.95),
        mean_ms=1e3 * statistics.fmean(latencies) if latencies else 0.,
        errors=len(errors), first_errors=errors[:5])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--clients', type=int, default=8)
    parser.add_argument('--duration', type=float, default=30,
                        help='measured seconds of load')
    parser.add_argument('--photos', type=int, default=64,
                        help='distinct files (copies of 40 unique photos)')
    parser.add_argument('--files-per-request', type=int, default=1)
    parser.add_argument('--max-batch', type=int, default=16)
    parser.add_argument('--device', default='cpu',
                        help='cpu (default), cuda or auto')
    parser.add_argument('--config', default=PROJECT_CONFIG)
    parser.add_argument('--checkpoint', help='default: the project model, '
                        'freshly initialised')
    parser.add_argument('--quick', action='store_true',
                        help='a smoke run: 2 clients, 3 s, 16 photos')
    parser.add_argument('--out', help='also write the results as JSON')
    args = parser.parse_args()
    if args.quick:
        args.clients, args.duration, args.photos = 2, 3., 16

    device = None if args.device == 'auto' else args.device
    with tempfile.TemporaryDirectory(prefix='flower_serve_load_') as tmp:
        write_photos(osp.join(tmp, 'data'), 0, args.photos)
        paths = sorted(
            osp.join(root, name)
            for root, _, names in os.walk(osp.join(tmp, 'data', 'val'))
            for name in names)
        checkpoint = args.checkpoint
        if checkpoint is None:
            checkpoint = osp.join(tmp, 'resnet50_flowers_init.pth')
            write_checkpoint(checkpoint)

        print(f'infer: {len(paths)} photos of 500x375 through '
              'BatchImageClassifier.predict (tools/infer.py), batch 16 ...',
              flush=True)
        infer = infer_images_per_s(args.config, checkpoint, paths, device)

        print(f'served: tools/serve.py, {args.clients} clients for '
              f'{args.duration:g} s ...', flush=True)
        proc, url, log = start_server(args.config, checkpoint, args.device,
                                      args.max_batch,
                                      osp.join(tmp, 'server.log'))
        try:
            photos = [(osp.basename(p), open(p, 'rb').read()) for p in paths]
            warm_up_server(url, photos[:args.clients])
            served = run_clients(url, photos, args.clients, args.duration,
                                 args.files_per_request,
                                 warmup_s=min(5., args.duration / 2))
        finally:
            proc.terminate()
            proc.wait(30)
            log.close()

    from flower_mm.utils import format_table
    rows = [
        ['infer (tools/infer.py path, batch 16)', '',
         f'{infer["images_per_s"]:.1f}', '', '', infer['errors']],
        [f'served, {served["clients"]} clients x '
         f'{args.files_per_request} photo(s)/request',
         f'{served["requests_per_s"]:.1f}', f'{served["images_per_s"]:.1f}',
         f'{served["p50_ms"]:.0f}', f'{served["p95_ms"]:.0f}',
         served['errors']],
    ]
    print(format_table(
        ['case', 'requests/s', 'images/s', 'p50 ms', 'p95 ms', 'errors'],
        rows))
    print(f'device {infer["device"]}, {infer["precision"]}; '
          f'{served["requests"]} requests measured over '
          f'{served["seconds"]:g} s')
    if served['first_errors']:
        print('first errors: ' + '; '.join(served['first_errors']))
    ratio = served['images_per_s'] / infer['images_per_s']
    if args.out:
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump(dict(infer=infer, served=served, ratio=ratio,
                           args=vars(args)), f, indent=2)
    print(f'served/infer images/s: {ratio:.2f}')


if __name__ == '__main__':
    main()
