from .precision import cpu_has_native_bf16, resolve_amp_dtype

__all__ = ['cpu_has_native_bf16', 'resolve_amp_dtype']
