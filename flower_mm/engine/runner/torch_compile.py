"""``torch.compile`` of a classifier's forward, and when it pays.

What is compiled is the network (``model.extract_feat``: backbone and
neck), not MMEngine's ``train_step``: compiling the whole step (data
preprocessor, loss, backward, optimizer) ran 7x slower than eager on a
2-core CPU with native bf16, while the network alone, with its backward,
trains 1.3x and predicts 3.6x as fast as eager there (less end to end,
where data loading shares the cores: docs/benchmarks.md). Checkpoints keep
their keys: only a bound method is replaced, no module is wrapped.

Compiling costs 10-50 s on 2 CPU cores (less with Inductor's on-disk
cache, which a second run of the same model hits), so ``'auto'`` compiles
only where a whole job measured faster, compile time included
(:func:`compile_pays`): inference of enough images on CPUs with native bf16
(AVX512-BF16, AMX). Training stays eager: a whole 3-epoch run on the
flower split took 345 s compiled against 269 s eager on that CPU (the
epochs after the first 2 % faster, the first 70 s slower), so even the
30-epoch recipe would not repay it (docs/benchmarks.md#backends).
"""
from contextlib import contextmanager
from typing import Iterator, Optional, Tuple

import torch
import torch._inductor.config as inductor_config
from mmengine.model import is_model_wrapper
from torch.utils._pytree import tree_map

from ...utils.precision import cpu_has_native_bf16

# Images from which compiling inference pays, compile time included, on a
# 2-core CPU with native bf16 (docs/benchmarks.md#backends): 64 images/s
# eager, 124 compiled, ~10 s to compile.
MIN_INFER_IMAGES = 3000


def compiler_unavailable_reason(device_type: str = 'cpu') -> Optional[str]:
    """Why Inductor cannot compile for ``device_type`` here (no C++
    compiler, no Triton), or None when it can."""
    if device_type == 'cpu':
        from torch._inductor.cpp_builder import get_cpp_compiler
        try:
            get_cpp_compiler()
        except Exception as err:  # InvalidCxxCompiler, or a broken one
            return (f'torch.compile needs a C++ compiler on the CPU: {err} '
                    '(install g++, or set CXX)')
        return None
    if device_type == 'cuda':
        from torch.utils._triton import has_triton
        return None if has_triton() else (
            'torch.compile needs Triton on the GPU (pip install triton)')
    return f'torch.compile is not set up for {device_type} here'


def compile_pays(device_type: str, num_images: float,
                 training: bool) -> Tuple[bool, str]:
    """Whether ``'auto'`` compiles a run of ``num_images`` (training or
    inference) on ``device_type``, and why, in a few words."""
    if training:
        return False, ('whole training runs were not measured faster '
                       'compiled (docs/benchmarks.md#backends)')
    if device_type != 'cpu' or not cpu_has_native_bf16():
        where = 'a GPU' if device_type != 'cpu' else \
            'a CPU without native bf16'
        return False, f'not measured faster on {where}'
    if num_images < MIN_INFER_IMAGES:
        return False, (f'{num_images:,} inference images, fewer than the '
                       f'{MIN_INFER_IMAGES:,} that repay compiling')
    reason = compiler_unavailable_reason(device_type)
    if reason:
        return False, reason
    count = 'a long-lived service' if num_images == float('inf') else \
        f'{num_images:,} inference images'
    return True, f'{count} on a CPU with native bf16'


def compile_forward(model: torch.nn.Module, inference: bool = False,
                    **options) -> torch.nn.Module:
    """Compile ``model.extract_feat`` in place (Inductor); ``model`` may be
    wrapped (DDP). ``options``: ``torch.compile``'s keyword arguments.

    Training steps (gradients on) run a graph of static shapes (its
    kernels trained 1.15x faster than with a dynamic batch axis; a last,
    smaller batch compiles once more). Forward passes without gradients
    (validation, inference) run a graph whose batch axis is dynamic, so a
    last batch or a service's varying batches do not recompile; with
    ``inference`` (a model that no longer trains) its weights are frozen
    into it (Inductor's ``freezing``: 1.9x the unfrozen graph's speed).
    """
    module = model.module if is_model_wrapper(model) else model
    if 'extract_feat' in vars(module):
        return model  # compiled already
    train_step = torch.compile(module.extract_feat, dynamic=False, **options)
    predict = torch.compile(module.extract_feat, **options)

    def extract_feat(inputs, *args, **kwargs):
        if torch.is_grad_enabled():
            return train_step(inputs, *args, **kwargs)
        # torch.compile specialises a batch of one: run it as two, so that
        # one graph serves every batch size.
        single = inputs.shape[0] == 1
        if single:
            inputs = torch.cat([inputs, inputs])
        torch._dynamo.maybe_mark_dynamic(inputs, 0)
        # Set while compiling: torch.compile's options= does not reach it.
        with inductor_config.patch(freezing=inference):
            feats = predict(inputs, *args, **kwargs)
        return tree_map(lambda t: t[:1], feats) if single else feats

    module.extract_feat = extract_feat
    return model


def is_compiled(model: torch.nn.Module) -> bool:
    """Whether :func:`compile_forward` compiled ``model``."""
    module = model.module if is_model_wrapper(model) else model
    return 'extract_feat' in vars(module)


@contextmanager
def eager_forward(model: torch.nn.Module) -> Iterator[None]:
    """The model's uncompiled forward while inside (e.g. for gradients of
    its layers, which a compiled graph does not hand to module hooks)."""
    module = model.module if is_model_wrapper(model) else model
    compiled = vars(module).pop('extract_feat', None)
    try:
        yield
    finally:
        if compiled is not None:
            module.extract_feat = compiled
