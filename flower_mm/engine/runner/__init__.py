from .amp_loops import AmpTestLoop, AmpValLoop, loop_fp16
from .flower_runner import FlowerRunner, init_cpu_dist

__all__ = [
    'AmpTestLoop', 'AmpValLoop', 'FlowerRunner', 'init_cpu_dist', 'loop_fp16'
]
