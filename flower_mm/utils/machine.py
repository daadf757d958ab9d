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


def describe_device() -> str:
    """The device tools/train.py picks here: ``1x <GPU>`` or
    ``CPU, <n> cores (<model>)``."""
    import torch
    if torch.cuda.is_available():
        return f'1x {torch.cuda.get_device_name(0)}'
    return f'CPU, {os.cpu_count()} cores ({cpu_model()})'
