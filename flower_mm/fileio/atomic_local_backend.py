"""A local file backend whose writes are atomic: a crash never leaves a
half-written file under the final name."""
import os
import os.path as osp
import threading
from pathlib import Path
from typing import Union

from mmengine.fileio import LocalBackend, register_backend
from mmengine.utils import mkdir_or_exist

# Threads of one process share its temporary name: one writes at a time.
_WRITING = threading.Lock()


def atomic_write_bytes(data: bytes, filepath: Union[str, Path]) -> None:
    """Write ``data`` to ``filepath`` so that readers see the old file or the
    whole new one, never a part.

    The bytes go to ``<filepath>.tmp-<pid>`` in the same directory (same file
    system, so the rename is atomic), are flushed and fsynced, and only then
    renamed over ``filepath``; the directory is fsynced so the rename
    survives a power cut. If writing fails (full disk, I/O error,
    KeyboardInterrupt), the temporary file is removed and ``filepath`` is
    untouched. A SIGKILL mid-write leaves only the temporary file, which
    :class:`AtomicCheckpointHook` removes on the next run.
    """
    filepath = str(filepath)
    dirname = osp.dirname(osp.abspath(filepath))
    mkdir_or_exist(dirname)
    tmp_path = f'{filepath}.tmp-{os.getpid()}'
    with _WRITING:
        try:
            with open(tmp_path, 'wb') as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp_path, filepath)
        except BaseException:
            try:
                os.remove(tmp_path)
            except OSError:
                pass
            raise
    _fsync_dir(dirname)


def _fsync_dir(dirname: str) -> None:
    # Makes the rename durable; not possible on every OS/file system.
    try:
        fd = os.open(dirname, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@register_backend('local_atomic')
class AtomicLocalBackend(LocalBackend):
    """MMEngine's :class:`LocalBackend` with atomic ``put``/``put_text``.

    Select it with ``backend_args=dict(backend='local_atomic')`` wherever
    MMEngine takes ``backend_args`` (``CheckpointHook`` passes them on to
    ``mmengine.runner.save_checkpoint``). It is registered under its own
    name only: the backend MMEngine picks for plain local paths is unchanged.
    """

    def put(self, obj: bytes, filepath: Union[str, Path]) -> None:
        atomic_write_bytes(obj, filepath)

    def put_text(self,
                 obj: str,
                 filepath: Union[str, Path],
                 encoding: str = 'utf-8') -> None:
        atomic_write_bytes(obj.encode(encoding), filepath)
