from .flower_runner import FlowerRunner, init_cpu_dist

__all__ = ['FlowerRunner', 'init_cpu_dist']
