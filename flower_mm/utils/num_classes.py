"""``num_classes='auto'``: the model takes its class count from the data.

A config that trains on any class-folder dataset
(``configs/resnet50_custom_folders.py``) cannot know the number of classes,
and writing it by hand twice (head and data preprocessor) invites mistakes.
It says ``'auto'`` instead, resolved before the model is built: from the
dataset by :class:`flower_mm.engine.runner.FlowerRunner`, from the
checkpoint's ``dataset_meta`` by :func:`load_trained_classifier`, which
the inference and export code build their model with.
"""
import copy
import re
from typing import List, Optional, Tuple

from mmengine.config import Config

AUTO = 'auto'

__all__ = [
    'AUTO', 'checkpoint_classes', 'load_trained_classifier',
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


def checkpoint_classes(checkpoint: dict,
                       cfg: Optional[Config] = None) -> Optional[List[str]]:
    """The training classes of a loaded checkpoint, in label order: those
    it records (``meta.dataset_meta``; mmcls 0.x: ``meta.CLASSES``), else,
    as MMPretrain's ``get_model`` has it, the fixed classes of ``cfg``'s
    test dataset type (``FlowerDataset``'s); None if neither says. The one
    reader of class names for trained models."""
    meta = checkpoint.get('meta') or {}
    classes = (meta.get('dataset_meta') or {}).get('classes') or meta.get(
        'CLASSES')
    if not classes and cfg is not None:
        from mmpretrain.registry import DATASETS
        dataset_type = ((cfg.get('test_dataloader') or {}).get('dataset')
                        or {}).get('type')
        dataset = DATASETS.get(dataset_type) if dataset_type else None
        classes = getattr(dataset, 'METAINFO', {}).get('classes')
    return list(classes) if classes else None


def load_trained_classifier(cfg: Config, checkpoint: str,
                            device: str = 'cpu') -> Tuple[object, List[str]]:
    """``cfg``'s classifier with ``checkpoint``'s weights, in eval mode on
    ``device``, and its class names (:func:`checkpoint_classes`, else the
    label numbers). The checkpoint is read once (safely,
    :mod:`flower_mm.compat`); ``num_classes='auto'`` is resolved by the
    classes it records; the model carries ``_config`` and
    ``_dataset_meta`` as MMPretrain's ``get_model`` leaves them, for its
    inferencer."""
    from mmengine.registry import DefaultScope
    from mmengine.runner import CheckpointLoader, load_state_dict
    from mmpretrain.registry import MODELS
    ckpt = CheckpointLoader.load_checkpoint(checkpoint, map_location='cpu')
    if uses_auto_num_classes(cfg.model) or (cfg.get('data_preprocessor')
                                            or {}).get('num_classes') == AUTO:
        recorded = checkpoint_classes(ckpt)
        if not recorded:
            from .config_checks import ConfigError
            raise ConfigError(
                f'model.head.num_classes is \'auto\' but {checkpoint} records '
                'no classes (meta.dataset_meta): pass a checkpoint written by '
                'tools/train.py, or set model.head.num_classes and '
                'data_preprocessor.num_classes.')
        set_auto_num_classes(cfg.model, len(recorded), cfg)
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.setdefault('data_preprocessor', cfg.get('data_preprocessor'))
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(model_cfg)
    state_dict = ckpt.get('state_dict', ckpt)
    # As MMEngine's load_checkpoint: weights saved from a DDP wrapper.
    load_state_dict(model, {re.sub(r'^module\.', '', k): v
                            for k, v in state_dict.items()})
    classes = checkpoint_classes(ckpt, cfg)
    model._config = cfg
    model._dataset_meta = dict((ckpt.get('meta') or {}).get('dataset_meta')
                               or {}, **({'classes': classes}
                                         if classes else {}))
    classes = classes or [str(i) for i in range(model.head.num_classes)]
    return model.to(device).eval(), classes
