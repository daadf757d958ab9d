from .amp_loops import AmpTestLoop, AmpValLoop
from .flower_runner import FlowerRunner, init_cpu_dist

__all__ = ['AmpTestLoop', 'AmpValLoop', 'FlowerRunner', 'init_cpu_dist']
