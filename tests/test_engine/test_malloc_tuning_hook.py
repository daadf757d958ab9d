"""MallocTuningHook: glibc stops page-faulting reused tensor memory."""
import pytest
from conftest import run_tool


MALLOC_PROBE = """
import ctypes, platform, resource, torch
from flower_mm.engine.hooks import MallocTuningHook

if platform.libc_ver()[0] == 'glibc':
    # glibc's start-up settings, without its adaptation to what is freed
    libc = ctypes.CDLL('libc.so.6')
    libc.mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD
    libc.mallopt(-1, 128 * 1024)  # M_TRIM_THRESHOLD

def faults():  # page faults of 20 allocations of a 24 MiB tensor
    start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(20):
        torch.empty(24 * 2**20, dtype=torch.uint8).fill_(1)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start

before = faults()
MallocTuningHook(enabled={enabled}).before_run(None)
faults()  # the first allocation after the change still maps pages
print(platform.libc_ver()[0], before, faults())
"""


@pytest.mark.parametrize('enabled', [True, False])
def test_malloc_tuning_hook_stops_page_faulting_reused_memory(
        tmp_path, enabled):
    # A fresh process: the allocator settings are process-wide.
    proc = run_tool(['-c', MALLOC_PROBE.format(enabled=enabled)],
                    cwd=tmp_path)
    libc, before, after = proc.stdout.split()[-3:]
    before, after = int(before), int(after)
    if libc != 'glibc' or not enabled:  # nothing to tune, or asked not to
        assert after > before / 2, (before, after)
        assert 'MallocTuningHook:' not in proc.stdout
    else:
        assert before > 1000  # every allocation mapped fresh pages
        assert after < before / 20, (before, after)
        assert 'glibc mmap threshold 32 MiB' in proc.stdout


def test_malloc_tuning_hook_checks_its_arguments():
    from flower_mm.engine import MallocTuningHook
    with pytest.raises(ValueError, match='mmap_threshold=.*glibc'):
        MallocTuningHook(mmap_threshold=64 * 2**20)
    with pytest.raises(ValueError, match='trim_threshold=0 must be'):
        MallocTuningHook(trim_threshold=0)
