"""Serve a trained checkpoint or its export: a web page and a JSON API.

    python tools/serve.py CONFIG CHECKPOINT|EXPORT [--host 127.0.0.1]
        [--port 8000] [--device auto|cpu|cuda]
        [--backend auto|pytorch|pytorch-compiled|onnxruntime|openvino]
        [--max-batch 16] [--max-upload-mb 20] [--cfg-options K=V ...]

Open http://127.0.0.1:8000/ for the page; POST photos to /predict (see
/docs). Binds 127.0.0.1 unless --host says otherwise: the service has no
authentication, so exposing it lets anyone who reaches the port use it.
"""
import argparse

from mmengine.config import Config

import flower_mm.registration  # noqa: F401  (also for old configs)
from flower_mm.cli.backend import add_backend_argument
from flower_mm.serving import create_app
from flower_mm.utils import (add_checkpoint_arguments,
                             check_checkpoint_arguments, exit_on_user_error,
                             merge_cfg_options)


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description='Serve a trained classifier over HTTP')
    add_checkpoint_arguments(parser, exports=True)
    parser.add_argument(
        '--host', default='127.0.0.1', help='address to bind (default '
        '127.0.0.1: this machine only; 0.0.0.0 exposes it to the network)')
    parser.add_argument('--port', type=int, default=8000)
    parser.add_argument(
        '--device', default='auto', help='auto (the GPU if any), cpu, cuda, '
        'cuda:1...')
    add_backend_argument(
        parser, ' (auto: for a long-lived service; /model says which)')
    parser.add_argument(
        '--max-batch', type=int, default=16,
        help='most images per forward pass, across concurrent requests')
    parser.add_argument(
        '--max-upload-mb', type=float, default=20,
        help='largest request body in MB; larger ones get 413')
    parser.add_argument(
        '--max-files', type=int, default=64,
        help='most files per request; more get 413')
    parser.add_argument(
        '--max-queue', type=int, default=64,
        help='requests that may wait for the model; more get 503')
    return parser


def main() -> None:
    parser = get_args_parser()
    args = parser.parse_args()
    check_checkpoint_arguments(parser, args, exports=True)
    for name in ('max_batch', 'max_upload_mb', 'max_files', 'max_queue'):
        if getattr(args, name) <= 0:
            parser.error(f'--{name.replace("_", "-")} must be positive')

    import uvicorn
    with exit_on_user_error():  # a typo in --cfg-options, a bad checkpoint
        cfg = merge_cfg_options(Config.fromfile(args.config),
                                args.cfg_options)
        app = create_app(
            cfg,
            args.checkpoint,
            device=args.device,
            backend=args.backend,
            max_batch=args.max_batch,
            max_upload_mb=args.max_upload_mb,
            max_files=args.max_files,
            max_queue=args.max_queue)
    print(f'Serving {args.checkpoint} on http://{args.host}:{args.port}/ '
          '(Ctrl+C stops)', flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level='warning')


if __name__ == '__main__':
    main()
