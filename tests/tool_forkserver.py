"""Run ``python tools/<tool>.py ...`` in a fork of a pre-imported interpreter.

Importing torch, MMEngine, MMPretrain and flower_mm takes ~9 s on the 2-core
CI machine, longer than most tool runs the tests make. A fork server (as in
multiprocessing's ``forkserver``) imports them once, then forks one child
per run. The child is a separate process with the run's own argv, cwd,
environment, stdout and stderr; it runs the script as ``__main__``, so
exit codes, tracebacks and atexit handlers are those of ``python SCRIPT``,
and it ends as multiprocessing's fork children do (:func:`_exit`: threads
joined, atexit handlers run, streams flushed, then ``os._exit``), without
finalising the modules it inherited. Nothing is computed before the fork,
so no thread pool is inherited.

Used by ``conftest.run_tool`` and ``start_tool``;
``FLOWER_MM_TEST_FRESH_PROCESSES=1`` runs every tool in a fresh interpreter
instead. Run as a script, this file is the server: one JSON request per
line on stdin; ``started PID`` and ``exited PID CODE`` lines on the reply
pipe.
"""
import itertools
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
# What the tools import; more only costs the server's start.
PRELOAD = ('flower_mm.registration', 'mmpretrain.apis',
           'mmpretrain.models', 'mmpretrain.evaluation', 'mmengine.runner',
           'onnxruntime', 'onnx', 'cv2', 'matplotlib', 'pytorch_grad_cam')
# Variables read when a process or a native library starts, not later: a
# run that changes them gets a fresh interpreter.
START_ONLY_ENV = ('LD_', 'MALLOC_', 'OMP_', 'MKL_', 'KMP_', 'CUDA_',
                  'PYTORCH_', 'PYTHONHASHSEED', 'PYTHONWARNINGS',
                  'PYTHONMALLOC', 'PYTHONDONTWRITEBYTECODE')


class ToolProcess:
    """A forked tool run, with the part of ``subprocess.Popen`` tests use."""

    def __init__(self, server, pid, args):
        self.server, self.pid, self.args = server, pid, args
        self.returncode = None

    def poll(self):
        if self.returncode is None:
            self.server._read_replies(timeout=0)
            self.returncode = self.server.exit_codes.get(self.pid)
        return self.returncode

    def wait(self, timeout=None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise subprocess.TimeoutExpired(self.args, timeout)
            self.server._read_replies(timeout=left)
        return self.returncode

    def terminate(self):
        if self.poll() is None:
            os.kill(self.pid, signal.SIGTERM)

    def kill(self):
        if self.poll() is None:
            os.killpg(self.pid, signal.SIGKILL)  # with its data workers


class ToolForkServer:
    """The pytest side: start the server once, run scripts through it."""

    def __init__(self):
        self.proc, self.env = None, None
        self.exit_codes, self.started = {}, []
        self.count = itertools.count()

    def can_run(self, argv, env) -> bool:
        if os.environ.get('FLOWER_MM_TEST_FRESH_PROCESSES', '0') not in (
                '', '0') or not (argv and argv[0].endswith('.py')):
            return False
        base = self.env if self.env is not None else os.environ
        changed = {k for k in set(env) | set(base)
                   if env.get(k) != base.get(k)}
        return not any(k.startswith(START_ONLY_ENV) for k in changed)

    def start(self, argv, cwd, env, stdout, stderr) -> ToolProcess:
        """Start ``python ARGV`` appending to the files ``stdout`` and
        ``stderr`` (the same path: both into one file)."""
        self._ensure_server()
        request = dict(argv=[str(a) for a in argv], cwd=str(cwd), env=env,
                       stdout=str(stdout), stderr=str(stderr))
        self.proc.stdin.write(json.dumps(request).encode() + b'\n')
        self.proc.stdin.flush()
        while not self.started:
            self._read_replies(timeout=None)
        return ToolProcess(self, self.started.pop(0),
                           [sys.executable, *request['argv']])

    def run(self, argv, cwd, env, timeout):
        """Like ``subprocess.run(capture_output=True, text=True)``."""
        self._ensure_server()
        n = next(self.count)
        out, err = (self.outputs / f'{n}.{name}'
                    for name in ('stdout', 'stderr'))
        proc = self.start(argv, cwd, env, out, err)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise subprocess.TimeoutExpired(proc.args, timeout,
                                            out.read_text(errors='replace'),
                                            err.read_text(errors='replace'))
        result = subprocess.CompletedProcess(
            proc.args, proc.returncode, out.read_text(errors='replace'),
            err.read_text(errors='replace'))
        out.unlink()
        err.unlink()
        return result

    def _ensure_server(self):
        if self.proc is not None and self.proc.poll() is None:
            return
        self.env = dict(os.environ)
        self.outputs = Path(tempfile.mkdtemp(prefix='tool-forkserver-'))
        self.log = tempfile.TemporaryFile()  # the server's own output
        reply_fd, write_fd = os.pipe()
        self.proc = subprocess.Popen(
            [sys.executable, __file__, str(write_fd)],
            stdin=subprocess.PIPE, stdout=self.log, stderr=self.log,
            pass_fds=(write_fd, ), cwd=REPO_ROOT, env=self.env)
        os.close(write_fd)
        self.replies = os.fdopen(reply_fd, 'rb', buffering=0)

    def _read_replies(self, timeout):
        """Read the lines the server has written, waiting up to ``timeout``
        seconds (None: for ever) for the first."""
        while select.select([self.replies], [], [], timeout)[0]:
            line = self.replies.readline()
            if not line:
                self.log.seek(0)
                raise RuntimeError('the tool fork server died:\n' +
                                   self.log.read().decode(errors='replace'))
            kind, pid, *code = line.split()
            if kind == b'started':
                self.started.append(int(pid))
            else:
                self.exit_codes[int(pid)] = int(code[0])
            timeout = 0

    def close(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.stdin.close()  # the server kills what still runs
            self.proc.wait(timeout=30)
            shutil.rmtree(self.outputs, ignore_errors=True)


def _run_child(request, base_path) -> None:
    """In the forked child: become ``python SCRIPT ARGS`` and exit."""
    os.setpgid(0, 0)  # one group with its data workers, to kill on timeout
    files = {}
    for fd in (1, 2):
        path = request[('stdout', 'stderr')[fd - 1]]
        if path not in files:
            files[path] = os.open(path,
                                  os.O_WRONLY | os.O_CREAT | os.O_APPEND,
                                  0o644)
        os.dup2(files[path], fd)
    for target in files.values():
        os.close(target)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    sys.stdin = open(0, closefd=False)
    os.chdir(request['cwd'])
    os.environ.clear()
    os.environ.update(request['env'])
    script = request['argv'][0]
    extra = [p for p in request['env'].get('PYTHONPATH', '').split(os.pathsep)
             if p]
    sys.path[:] = [os.path.dirname(os.path.abspath(script))] + extra + \
        base_path
    sys.argv = list(request['argv'])
    import runpy
    try:
        runpy.run_path(script, run_name='__main__')
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    except BaseException:
        sys.excepthook(*sys.exc_info())
        code = 1
    _exit(code)


def _exit(code) -> None:
    """End the child as ``raise SystemExit(code)`` ends ``python SCRIPT``,
    without the interpreter's finalisation.

    What shutdown does that a tool can observe is done here, in its order:
    wait for non-daemon threads, run the atexit handlers (multiprocessing's
    included), flush stdout and stderr. Then ``os._exit``, as
    multiprocessing's own fork children end: finalising every module would
    touch each object the server imported, copying its whole heap page by
    page (2-12 s per run on 2 cores, against 0.1 s).
    """
    import atexit
    import threading
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:  # sys.exit('message'): printed, status 1
        print(code, file=sys.stderr)
        status = 1
    try:
        threading._shutdown()
        atexit._run_exitfuncs()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        os._exit(status & 0xFF)


def serve(reply_fd: int) -> None:
    import importlib
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    # A script's path is its own folder first, not this one's (tests/).
    base_path = [p for p in sys.path if p != os.path.dirname(__file__)]
    replies = os.fdopen(reply_fd, 'wb', buffering=0)
    pending, running = b'', set()
    while True:
        # Poll for exits while children run; otherwise wait for requests.
        if select.select([0], [], [], 0.05 if running else None)[0]:
            data = os.read(0, 1 << 16)
            if not data:  # the tests are over
                for pid in running:
                    try:
                        os.killpg(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                return
            pending += data
            while b'\n' in pending:
                line, pending = pending.split(b'\n', 1)
                sys.stdout.flush()
                sys.stderr.flush()
                pid = os.fork()
                if pid == 0:
                    replies.close()
                    _run_child(json.loads(line), base_path)  # never returns
                running.add(pid)
                replies.write(f'started {pid}\n'.encode())
        for pid in list(running):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                running.remove(pid)
                code = os.waitstatus_to_exitcode(status)
                replies.write(f'exited {pid} {code}\n'.encode())


if __name__ == '__main__':
    serve(int(sys.argv[1]))
