"""``num_classes='auto'``: the model takes its class count from the data.

A config that trains on any class-folder dataset
(``configs/resnet50_custom_folders.py``) cannot know the number of classes,
and writing it by hand twice (head and data preprocessor) invites mistakes.
It says ``'auto'`` instead, resolved before the model is built: from the
dataset by :class:`flower_mm.engine.runner.FlowerRunner`, from the
checkpoint's ``dataset_meta`` by the inference and export tools.
"""
from typing import Optional, Sequence

from mmengine.config import Config

AUTO = 'auto'

__all__ = [
    'AUTO', 'checkpoint_classes', 'resolve_from_checkpoint',
    'set_auto_num_classes', 'uses_auto_num_classes'
]


def _num_classes_holders(model_cfg: dict, top_cfg: Optional[dict] = None):
    """The dicts that carry a ``num_classes`` of the model."""
    holders = [model_cfg.get('head'), model_cfg.get('data_preprocessor')]
    if top_cfg is not None:
        holders.append(top_cfg.get('data_preprocessor'))
    return [h for h in holders if isinstance(h, dict)]


def uses_auto_num_classes(model_cfg: dict) -> bool:
    """Whether the model config asks for ``num_classes='auto'``."""
    return any(
        h.get('num_classes') == AUTO
        for h in _num_classes_holders(model_cfg))


def set_auto_num_classes(model_cfg: dict,
                         num_classes: int,
                         top_cfg: Optional[dict] = None) -> None:
    """Replace every ``num_classes='auto'`` of the model (head, data
    preprocessor; also ``top_cfg.data_preprocessor``) with ``num_classes``;
    numbers written by hand stay, so a mismatch is still reported."""
    for holder in _num_classes_holders(model_cfg, top_cfg):
        if holder.get('num_classes') == AUTO:
            holder['num_classes'] = num_classes


def checkpoint_classes(checkpoint: str) -> Optional[Sequence[str]]:
    """The training classes a checkpoint of ``tools/train.py`` records."""
    # flower_mm.compat makes this loader the safe one.
    from mmengine.runner import CheckpointLoader
    ckpt = CheckpointLoader.load_checkpoint(checkpoint, map_location='cpu')
    return (ckpt.get('meta', {}).get('dataset_meta') or {}).get('classes')


def resolve_from_checkpoint(cfg: Config, checkpoint: str) -> None:
    """Resolve ``num_classes='auto'`` in ``cfg`` by the checkpoint's
    classes (for tools that build the model without a dataset)."""
    if not uses_auto_num_classes(cfg.model) and (cfg.get(
            'data_preprocessor') or {}).get('num_classes') != AUTO:
        return
    classes = checkpoint_classes(checkpoint)
    if not classes:
        from .config_checks import ConfigError
        raise ConfigError(
            f'model.head.num_classes is \'auto\' but {checkpoint} records '
            'no classes (meta.dataset_meta): pass a checkpoint written by '
            'tools/train.py, or set model.head.num_classes and '
            'data_preprocessor.num_classes.')
    set_auto_num_classes(cfg.model, len(classes), cfg)
