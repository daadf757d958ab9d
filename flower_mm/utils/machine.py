"""What machine a run or a benchmark ran on, for results tables."""
import os
import platform


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else the platform's."""
    try:
        with open('/proc/cpuinfo') as f:
            return next(line.split(':', 1)[1].strip() for line in f
                        if line.startswith('model name'))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def usable_cores() -> int:
    """The cores this process may run on: its affinity mask, which Slurm,
    taskset or a container may narrow, where the OS has one (Linux), else
    every core (macOS, Windows). The one core count of flower-mm."""
    if hasattr(os, 'sched_getaffinity'):  # not on macOS or Windows
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def auto_num_workers() -> int:
    """Data loader workers for ``num_workers='auto'``: every core this
    process may use (its affinity mask, which Slurm or taskset may narrow)
    but one, 2 to 16, the cores shared by the ``LOCAL_WORLD_SIZE``
    processes torchrun starts on the machine. A training pipeline takes
    ~6 ms of CPU per photo: a GPU consuming 2000+ images/s needs a dozen
    workers, a 2-core CPU 2 (docs/speed.md)."""
    cores = usable_cores() // int(os.environ.get('LOCAL_WORLD_SIZE', 1))
    return max(2, min(16, cores - 1))


def resolve_num_workers(num_workers) -> int:
    """``num_workers`` of a data loader config, with ``'auto'`` resolved."""
    return auto_num_workers() if num_workers == 'auto' else int(num_workers)


def describe_device() -> str:
    """The device tools/train.py picks here: ``1x <GPU>`` or
    ``CPU, <n> cores (<model>)``."""
    import torch
    if torch.cuda.is_available():
        return f'1x {torch.cuda.get_device_name(0)}'
    return f'CPU, {usable_cores()} cores ({cpu_model()})'
