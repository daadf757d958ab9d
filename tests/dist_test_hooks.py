"""Test-only hook: each rank saves its parameters when training ends, so a
test can check that data-parallel ranks stayed identical. Imported by the
test's --cfg-options only (custom_imports)."""
import os.path as osp

import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmpretrain.registry import HOOKS


@HOOKS.register_module()
class SaveRankParamsHook(Hook):
    """Write ``rank<N>_params.pth`` (name -> parameter) into ``out_dir``."""

    def __init__(self, out_dir: str) -> None:
        self.out_dir = out_dir

    def after_train(self, runner) -> None:
        model = runner.model
        if is_model_wrapper(model):
            model = model.module
        params = {
            name: param.detach().cpu().clone()
            for name, param in model.named_parameters()
        }
        torch.save(params, osp.join(self.out_dir,
                                    f'rank{get_rank()}_params.pth'))
