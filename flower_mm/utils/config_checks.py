"""Checks that turn config mistakes into one clear error before training.

MMEngine merges ``--cfg-options`` into a config without complaint: a typo
such as ``load_form=ckpt.pth`` adds an unused key and the run goes on
without the checkpoint. :func:`check_cfg_options` compares each option with
the loaded config first. The checks that need the built datasets and model
(classes, batch size, checkpoint files) run in
:class:`flower_mm.engine.hooks.ConfigCheckHook`.
"""
import copy
import difflib
import inspect
import os.path as osp
from typing import Iterable, List, Optional, Set, Tuple

from mmengine.config import Config
from mmengine.runner import Runner
from mmengine.runner.checkpoint import CheckpointLoader
from mmpretrain import registry as mmpretrain_registry
from torch.utils.data import DataLoader

from .user_errors import FlowerUserError


class ConfigError(FlowerUserError, ValueError):
    """A config key or value that cannot work, found before training."""


# Top-level keys that MMEngine's Runner and the tools read although the
# config may lack them: Runner's arguments plus what it reads by cfg.get().
RUNNER_KEYS = (
    set(inspect.signature(Runner.__init__).parameters) - {'self', 'cfg'}) | {
        'runner_type', 'model_wrapper_cfg', 'find_unused_parameters',
        'sync_bn', 'compile', 'activation_checkpointing',
        'efficient_conv_bn_eval', 'custom_imports', 'tta_model',
        'tta_pipeline'
    }

# Which registry a ``type`` is looked up in, by the nearest key above it.
_REGISTRY_BY_KEY = {
    'model': 'MODELS',
    'backbone': 'MODELS',
    'neck': 'MODELS',
    'head': 'MODELS',
    'loss': 'MODELS',
    'data_preprocessor': 'MODELS',
    'init_cfg': 'WEIGHT_INITIALIZERS',
    'augments': 'BATCH_AUGMENTS',
    'dataset': 'DATASETS',
    'pipeline': 'TRANSFORMS',
    'sampler': 'DATA_SAMPLERS',
    'batch_sampler': 'DATA_SAMPLERS',
    'optim_wrapper': 'OPTIM_WRAPPERS',
    'optimizer': 'OPTIMIZERS',
    'param_scheduler': 'PARAM_SCHEDULERS',
    'default_hooks': 'HOOKS',
    'custom_hooks': 'HOOKS',
    'val_evaluator': 'METRICS',
    'test_evaluator': 'METRICS',
    'visualizer': 'VISUALIZERS',
    'vis_backends': 'VISBACKENDS',
    'log_processor': 'LOG_PROCESSORS',
    'train_cfg': 'LOOPS',
    'val_cfg': 'LOOPS',
    'test_cfg': 'LOOPS',
}
# Keys a builder takes out of a dict before calling the class.
_BUILDER_KEYS = {'type', '_scope_', '_delete_'}
_EXTRA_KEYS = {
    'OPTIM_WRAPPERS': {'constructor', 'paramwise_cfg'},
    'LOOPS': {'by_epoch'},
}
_DATALOADER_KEYS = {
    'dataset', 'sampler', 'batch_sampler', 'collate_fn', 'worker_init_fn',
    'num_batch_per_epoch', 'disable_subprocess_warning'
}
# What Runner builds from these top-level dicts without ``type``.
_DEFAULT_TYPES = {
    'train_cfg': 'IterBasedTrainLoop',  # EpochBasedTrainLoop if by_epoch
    'val_cfg': 'ValLoop',
    'test_cfg': 'TestLoop',
    'optim_wrapper': 'OptimWrapper',
}


def merge_cfg_options(cfg: Config, options: Optional[dict]) -> Config:
    """Check ``--cfg-options`` (:func:`check_cfg_options`), then merge them.

    The one way every tool applies ``--cfg-options``.
    """
    if options:
        check_cfg_options(cfg, options)
        cfg.merge_from_dict(options)
    return cfg


def check_cfg_options(cfg: Config, options: Optional[dict]) -> None:
    """Refuse ``--cfg-options`` keys that the run would silently ignore.

    The rule, for each dotted key, walking the loaded config:

    - a top-level key must be in the config or be one that MMEngine's Runner
      reads (``work_dir``, ``load_from``, ``resume``, ``model_wrapper_cfg``);
    - a new key inside an existing dict must be a parameter of what the dict
      builds: the class its ``type`` names in MMPretrain's registries (with
      the parameters of its base classes where it takes ``**kwargs``), a
      ``DataLoader`` for ``*_dataloader``, the loop for ``train_cfg`` and
      the like. Any key goes where the class takes ``**kwargs`` that it does
      not hand to a base class, or where what the dict builds is unknown;
    - list items are addressed by an index that exists.

    Keys are checked against the ``type`` that the options themselves set:
    ``optim_wrapper.type=AmpOptimWrapper optim_wrapper.loss_scale=dynamic``
    passes.

    Raises:
        ConfigError: naming the key, with the closest valid key.
    """
    options = options or {}
    type_options = {
        key: value
        for key, value in options.items()
        if key.rsplit('.', 1)[-1] in ('type', '_scope_')
    }
    for key in type_options:
        _check_key(cfg, key)
    typed_cfg = copy.deepcopy(cfg)
    typed_cfg.merge_from_dict(type_options)
    for key in options:
        if key not in type_options:
            _check_key(typed_cfg, key)


def _check_key(cfg: Config, dotted: str) -> None:
    node = cfg.to_dict()
    parts = dotted.split('.')
    for depth, part in enumerate(parts):
        where = '.'.join(parts[:depth])
        if isinstance(node, (list, tuple)):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(
                    f'--cfg-options {dotted}: "{where}" is a list of '
                    f'{len(node)} items; address one with {where}.0 to '
                    f'{where}.{len(node) - 1}.')
            node = node[int(part)]
            continue
        if not isinstance(node, dict):
            raise ConfigError(
                f'--cfg-options {dotted}: "{where}" is {node!r}, not a dict, '
                f'so it has no key "{part}".')
        if part in node:
            node = node[part]
            continue
        if depth == 0:
            accepted, why = RUNNER_KEYS, ('MMEngine would add it to the '
                                          'config and never read it')
        else:
            accepted, builder = _accepted_keys(node, parts[:depth])
            why = f'{builder} takes no such argument'
        if accepted is None or part in accepted:
            return  # a new key that what the dict builds takes
        within = 'the config' if depth == 0 else f'"{where}"'
        raise ConfigError(f'--cfg-options {dotted}: unknown key "{part}" in '
                          f'{within} ({why})' +
                          _did_you_mean(
                              part, (set(node) | accepted) -
                              {'_scope_', '_delete_'}))


def _did_you_mean(key: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(key, sorted(candidates), n=1)
    return (f'; did you mean "{close[0]}"?'
            if close else '. Check the spelling against the config.')


def _accepted_keys(node: dict,
                   path: List[str]) -> Tuple[Optional[Set[str]], str]:
    """Keys the builder of ``node`` takes (None where any key may do), and
    the builder's name."""
    parent = path[-1]
    if parent.endswith('_dataloader') and len(path) == 1:
        return _parameters(DataLoader) | _DATALOADER_KEYS, 'DataLoader'
    registry_name = next((_REGISTRY_BY_KEY[key] for key in reversed(path)
                          if key in _REGISTRY_BY_KEY), None)
    if registry_name is None:
        return None, ''
    type_ = node.get('type')
    if type_ is None and len(path) == 1 and parent in _DEFAULT_TYPES:
        type_ = 'EpochBasedTrainLoop' if parent == 'train_cfg' and node.get(
            'by_epoch') else _DEFAULT_TYPES[parent]
    if type_ is None:
        return None, ''
    registry = getattr(mmpretrain_registry, registry_name)
    accepted = set(_BUILDER_KEYS) | _EXTRA_KEYS.get(registry_name, set())
    obj = type_ if callable(type_) else registry.get(type_)
    params = _parameters(obj) if obj is not None else None
    if params is None:
        return None, ''
    return accepted | params, type_ if isinstance(type_, str) \
        else getattr(obj, '__name__', str(obj))


def _parameters(obj) -> Optional[Set[str]]:
    """Keyword parameters of a class (following ``**kwargs`` up its bases)
    or function; None where it takes arbitrary keywords."""
    if not inspect.isclass(obj):
        try:
            params = inspect.signature(obj).parameters.values()
        except (TypeError, ValueError):
            return None
        if any(p.kind is p.VAR_KEYWORD for p in params):
            return None
        return {p.name for p in params}
    names = set()
    for klass in obj.__mro__:
        if klass is object or '__init__' not in vars(klass):
            continue
        try:
            params = inspect.signature(klass.__init__).parameters.values()
        except (TypeError, ValueError):
            return None
        names |= {p.name for p in params if p.name != 'self'}
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            return names
    return None  # **kwargs up to object: they go somewhere else


def is_local_path(filename: str) -> bool:
    """Whether MMEngine reads ``filename`` from the local disk: with the
    loader of the empty prefix, whichever is registered there."""
    return CheckpointLoader._get_checkpoint_loader(
        filename) is CheckpointLoader._schemes['']


def check_checkpoint_exists(filename: Optional[str], key: str,
                            how_to_fix: str = '') -> None:
    """Raise :class:`ConfigError` if a local checkpoint file is missing."""
    if filename and is_local_path(filename) \
            and not osp.isfile(osp.expanduser(filename)):
        raise ConfigError(
            f'{key}: checkpoint "{filename}" does not exist'
            + (f' ({osp.abspath(filename)})'
               if not osp.isabs(filename) else '') + '. '
            + (how_to_fix or 'Give the path of an existing .pth file.'))
