from .amp_loops import AmpTestLoop, AmpValLoop, loop_fp16
from .flower_runner import FlowerRunner, init_cpu_dist
from .torch_compile import (compile_forward, compile_pays,
                            compiler_unavailable_reason, eager_forward,
                            is_compiled)

__all__ = [
    'AmpTestLoop', 'AmpValLoop', 'FlowerRunner', 'compile_forward',
    'compile_pays', 'compiler_unavailable_reason', 'eager_forward',
    'init_cpu_dist', 'is_compiled', 'loop_fp16'
]
