"""Let glibc keep freed tensor memory instead of faulting it in again."""
import ctypes
import ctypes.util
import platform
from typing import Optional

from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmpretrain.registry import HOOKS

# mallopt() parameters, from glibc's malloc.h
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
# glibc caps M_MMAP_THRESHOLD at 32 MiB on 64-bit systems.
MAX_MMAP_THRESHOLD = 32 * 2**20


def _glibc() -> Optional[ctypes.CDLL]:
    if platform.system() != 'Linux' or platform.libc_ver()[0] != 'glibc':
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6')
    except OSError:
        return None


@HOOKS.register_module()
class MallocTuningHook(Hook):
    """Raise glibc's mmap and trim thresholds before the run.

    PyTorch allocates CPU tensors with ``malloc``. With glibc's defaults,
    blocks above a threshold that depends on what the process freed before
    (128 KiB to 32 MiB) get fresh pages from the kernel at every allocation,
    and freed heap tops go back to the kernel: each training iteration
    page-faults its activations in again. Training ResNet-50 on the CPU
    (batch 16, bf16) we measured 12 000 to 68 000 page faults per iteration,
    depending on the process's history, and under 1 000 with these
    settings; with glibc's start-up thresholds, 180 000 faults and 1.6x the
    time per iteration (see docs/speed.md). The environment variables
    ``MALLOC_MMAP_THRESHOLD_`` and ``MALLOC_TRIM_THRESHOLD_`` do the same,
    as do jemalloc and tcmalloc, which the launcher
    ``torch.backends.xeon.run_cpu`` preloads.

    Data workers forked afterwards inherit the settings. Freed memory stays
    with the process, so its resident size stays near its peak. Does nothing
    where the C library is not glibc.

    Args:
        enabled (bool): False leaves the allocator as it is:
            ``--cfg-options default_hooks.malloc_tuning.enabled=False``.
            Defaults to True.
        mmap_threshold (int): Bytes from which ``malloc`` maps fresh pages.
            At most 32 MiB. Defaults to 32 MiB.
        trim_threshold (int): Free bytes at the heap top kept for reuse.
            Defaults to 1 GiB.
    """

    priority = 'VERY_HIGH'

    def __init__(self,
                 enabled: bool = True,
                 mmap_threshold: int = MAX_MMAP_THRESHOLD,
                 trim_threshold: int = 2**30) -> None:
        if not 0 < mmap_threshold <= MAX_MMAP_THRESHOLD:
            raise ValueError(
                f'MallocTuningHook: mmap_threshold={mmap_threshold} must be '
                f'in 1..{MAX_MMAP_THRESHOLD} (glibc\'s limit).')
        if trim_threshold <= 0:
            raise ValueError(
                f'MallocTuningHook: trim_threshold={trim_threshold} must be '
                'positive.')
        self.enabled = enabled
        self.mmap_threshold = mmap_threshold
        self.trim_threshold = trim_threshold

    def before_run(self, runner) -> None:
        libc = _glibc() if self.enabled else None
        if libc is None:
            return
        ok = libc.mallopt(M_MMAP_THRESHOLD, self.mmap_threshold) == 1 and \
            libc.mallopt(M_TRIM_THRESHOLD, self.trim_threshold) == 1
        print_log(
            f'MallocTuningHook: glibc mmap threshold '
            f'{self.mmap_threshold // 2**20} MiB, trim threshold '
            f'{self.trim_threshold // 2**20} MiB'
            if ok else 'MallocTuningHook: glibc refused mallopt(); '
            'allocator settings unchanged',
            logger='current')
