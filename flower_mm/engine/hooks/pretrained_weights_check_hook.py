"""Fail before training when pretrained weights cannot be loaded as asked."""
import os.path as osp
from typing import Iterator, Tuple

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.runner import BaseLoop
from mmengine.runner.checkpoint import CheckpointLoader
from mmpretrain.registry import HOOKS

from ...compat import UnsafeCheckpointError
from ...utils.user_errors import FlowerUserError


class PretrainedWeightsError(FlowerUserError, RuntimeError):
    """Pretrained weights named by a config cannot be used."""


@HOOKS.register_module()
class PretrainedWeightsCheckHook(Hook):
    """Check every ``init_cfg=dict(type='Pretrained', ...)`` before training.

    MMEngine fetches pretrained weights in ``Runner.train()`` right after
    ``before_run``, and loads them with ``strict=False``: a wrong file only
    logs a warning, and an offline machine fails with a bare ``URLError``.
    This hook fetches each checkpoint first (filling the same download cache,
    so nothing is read twice over the network), and stops with a message
    that says where it looked and how to supply the file when it cannot be
    fetched, lacks the weights of the module, or has other shapes. It also
    refuses frozen backbone stages with no pretrained weights at all: they
    would train on random features.
    """

    priority = 'VERY_HIGH'

    def before_run(self, runner) -> None:
        # Runner.test() calls before_run too but initialises no weights.
        if not isinstance(runner._train_loop, BaseLoop):
            return
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        pretrained = list(_pretrained_init_cfgs(model))
        for name, module, init_cfg in pretrained:
            check_pretrained_weights(module, name, init_cfg)
        backbone = getattr(model, 'backbone', None)
        frozen = getattr(backbone, 'frozen_stages', -1)
        if frozen >= 0 and not pretrained and not runner._load_from:
            raise PretrainedWeightsError(
                f'model.backbone freezes stages up to {frozen} '
                '(frozen_stages) but no pretrained weights are loaded '
                '(no init_cfg of type "Pretrained", no load_from): the frozen '
                'stages would keep random weights. Set '
                'model.backbone.init_cfg=dict(type="Pretrained", '
                'checkpoint=..., prefix="backbone") or frozen_stages=-1.')


def _pretrained_init_cfgs(model) -> Iterator[Tuple[str, torch.nn.Module,
                                                   dict]]:
    for name, module in model.named_modules():
        init_cfgs = getattr(module, 'init_cfg', None) or []
        if isinstance(init_cfgs, dict):
            init_cfgs = [init_cfgs]
        for init_cfg in init_cfgs:
            if init_cfg.get('type') == 'Pretrained':
                yield name or 'model', module, init_cfg


def check_pretrained_weights(module, name: str, init_cfg: dict) -> None:
    """Load ``init_cfg``'s checkpoint and check it fits ``module``."""
    checkpoint = init_cfg['checkpoint']
    prefix = init_cfg.get('prefix')
    key = f'model.{name}.init_cfg.checkpoint' if name != 'model' \
        else 'model.init_cfg.checkpoint'
    how_to_supply = (
        'Download the file by hand and point the config at it: '
        f'--cfg-options {key}=/path/to/'
        f'{osp.basename(checkpoint.split("?")[0]) or "weights.pth"}')
    is_url = checkpoint.startswith(('http://', 'https://'))
    if not is_url and not osp.isfile(checkpoint):
        raise PretrainedWeightsError(
            f'Pretrained weights for `{name}` not found: "{checkpoint}" '
            f'is not a file. {how_to_supply}')
    try:
        ckpt = CheckpointLoader.load_checkpoint(checkpoint, map_location='cpu')
    except UnsafeCheckpointError:
        raise  # says all; re-downloading would not help
    except Exception as err:
        where = (f'downloading {checkpoint} into the cache '
                 f'{osp.join(torch.hub.get_dir(), "checkpoints")}'
                 if is_url else f'reading "{checkpoint}"')
        raise PretrainedWeightsError(
            f'Cannot load pretrained weights for `{name}`: {where} failed '
            f'with {type(err).__name__}: {err}. {how_to_supply}') from err

    state_dict = ckpt.get('state_dict', ckpt) if isinstance(ckpt,
                                                            dict) else {}
    if prefix:
        prefix = prefix.rstrip('.') + '.'
        state_dict = {
            k[len(prefix):]: v
            for k, v in state_dict.items() if k.startswith(prefix)
        }
    wanted = {
        k: v
        for k, v in module.state_dict().items()
        if not k.endswith('num_batches_tracked')
    }
    missing = [k for k in wanted if k not in state_dict]
    mismatched = [
        f'{k}: checkpoint {tuple(state_dict[k].shape)} vs model '
        f'{tuple(v.shape)}' for k, v in wanted.items()
        if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)
    ]
    if missing or mismatched:
        problems = []
        if missing:
            problems.append(f'{len(missing)} of {len(wanted)} weights '
                            f'missing (e.g. {prefix or ""}{missing[0]})')
        if mismatched:
            problems.append(f'{len(mismatched)} with other shapes (e.g. '
                            f'{mismatched[0]})')
        raise PretrainedWeightsError(
            f'Checkpoint "{checkpoint}" does not fit `{name}`'
            f'{f" under the prefix {prefix!r}" if prefix else ""}: '
            f'{"; ".join(problems)}. Is it the checkpoint of this '
            f'architecture? {how_to_supply}')
