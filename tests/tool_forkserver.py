"""Run ``python tools/<tool>.py ...`` in a fork of a pre-imported interpreter.

Importing torch, MMEngine, MMPretrain and flower_mm takes ~9 s on the 2-core
CI machine, longer than most tool runs the tests make. A fork server (as in
multiprocessing's ``forkserver``) imports them once, then forks one child
per run. The child is a separate process with the run's own argv, cwd,
environment, stdout and stderr; it runs the script as ``__main__`` and
exits through the normal interpreter shutdown, so exit codes, tracebacks
and atexit handlers are those of ``python SCRIPT``. Nothing is computed
before the fork, so no thread pool is inherited.

Used by ``conftest.run_tool``; ``FLOWER_MM_TEST_FRESH_PROCESSES=1`` runs
every tool in a fresh interpreter instead. Run as a script, this file is
the server: one JSON request per line on stdin, the child's pid and then
its exit code as lines on the protocol fd.
"""
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
# What every tool imports; more only costs the server's start.
PRELOAD = ('flower_mm', 'mmpretrain.apis', 'mmpretrain.models',
           'mmpretrain.evaluation', 'mmengine.runner', 'onnxruntime', 'onnx',
           'cv2', 'matplotlib', 'pytorch_grad_cam')
# Variables read when a process or a native library starts, not later: a
# run that sets them gets a fresh interpreter.
START_ONLY_ENV = ('LD_', 'MALLOC_', 'OMP_', 'MKL_', 'KMP_', 'CUDA_',
                  'PYTHONHASHSEED', 'PYTHONWARNINGS', 'PYTHONMALLOC',
                  'PYTHONDONTWRITEBYTECODE', 'PYTORCH_')


class ToolForkServer:
    """The pytest side: start the server once, run scripts through it."""

    def __init__(self):
        self.proc = None
        self.env = None

    def can_run(self, argv, env) -> bool:
        if os.environ.get('FLOWER_MM_TEST_FRESH_PROCESSES', '0') not in (
                '', '0') or not (argv and argv[0].endswith('.py')):
            return False
        base = self.env if self.env is not None else os.environ
        changed = {k for k in set(env) | set(base)
                   if env.get(k) != base.get(k)}
        return not any(k.startswith(START_ONLY_ENV) for k in changed)

    def _start(self):
        if self.proc is None or self.proc.poll() is not None:
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
        return self.proc

    def _reply(self, timeout=None) -> int:
        if not select.select([self.replies], [], [], timeout)[0]:
            raise TimeoutError
        line = self.replies.readline()
        if not line:
            self.log.seek(0)
            raise RuntimeError('the tool fork server died:\n' +
                               self.log.read().decode(errors='replace'))
        return int(line)

    def run(self, argv, cwd, env, timeout):
        """Like ``subprocess.run(capture_output=True, text=True)``."""
        server = self._start()
        out, err = self.outputs / 'stdout', self.outputs / 'stderr'
        request = dict(argv=argv, cwd=str(cwd), env=env, stdout=str(out),
                       stderr=str(err))
        server.stdin.write(json.dumps(request).encode() + b'\n')
        server.stdin.flush()
        pid = self._reply()
        try:
            code = self._reply(timeout)
            timed_out = False
        except TimeoutError:
            os.killpg(pid, signal.SIGKILL)
            code, timed_out = self._reply(), True
        stdout, stderr = (p.read_text(errors='replace') for p in (out, err))
        out.unlink()
        err.unlink()
        if timed_out:
            raise subprocess.TimeoutExpired([sys.executable, *argv], timeout,
                                            stdout, stderr)
        return subprocess.CompletedProcess([sys.executable, *argv], code,
                                           stdout, stderr)

    def close(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=30)
            shutil.rmtree(self.outputs, ignore_errors=True)


def _run_child(request, base_path) -> None:
    """In the forked child: become ``python SCRIPT ARGS`` and exit."""
    os.setpgid(0, 0)  # a timeout kills the run and its data workers
    for fd, path in ((1, request['stdout']), (2, request['stderr'])):
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(target, fd)
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
    except SystemExit:
        raise
    except BaseException:
        sys.excepthook(*sys.exc_info())
        raise SystemExit(1)
    raise SystemExit(0)


def serve(reply_fd: int) -> None:
    sys.path.insert(0, str(REPO_ROOT))
    import importlib
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    base_path = [p for p in sys.path
                 if p not in (str(REPO_ROOT), os.path.dirname(__file__))]
    replies = os.fdopen(reply_fd, 'wb', buffering=0)
    for line in sys.stdin.buffer:
        request = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            replies.close()
            _run_child(request, base_path)  # exits, never returns
        replies.write(f'{pid}\n'.encode())
        _, status = os.waitpid(pid, 0)
        replies.write(f'{os.waitstatus_to_exitcode(status)}\n'.encode())


if __name__ == '__main__':
    serve(int(sys.argv[1]))
