from .precision import (cpu_has_native_bf16, idle_autocast_dtype,
                        resolve_amp_dtype)

__all__ = ['cpu_has_native_bf16', 'idle_autocast_dtype', 'resolve_amp_dtype']
