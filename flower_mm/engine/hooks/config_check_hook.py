"""Fail before training when the config does not fit the data or files."""
from mmengine.dist import get_world_size
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.runner import BaseLoop
from mmpretrain.registry import HOOKS

from ...utils.config_checks import ConfigError, check_checkpoint_exists


@HOOKS.register_module()
class ConfigCheckHook(Hook):
    """Check the built run against its config in ``before_run``.

    ``before_run`` comes after the Runner has built the model and the
    datasets of the loops it runs, and before it initialises or loads any
    weights, so the mistakes below stop the run at once, with a message that
    names the config key, instead of failing later or training on nothing:

    - ``model.head.num_classes`` or ``data_preprocessor.num_classes`` differs
      from the number of classes of a dataset;
    - the training loader yields no batch: ``batch_size`` larger than the
      (per-process) training set with ``drop_last=True``;
    - ``load_from`` (also set by ``--resume CKPT`` and ``tools/test.py``)
      names a local file that does not exist.

    A data root that lacks classes fails earlier, when
    :class:`flower_mm.datasets.FlowerDataset` is built.
    """

    priority = 'VERY_HIGH'

    def before_run(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        for key, loop in (('train_dataloader', runner._train_loop),
                          ('val_dataloader', runner._val_loop),
                          ('test_dataloader', runner._test_loop)):
            if isinstance(loop, BaseLoop):
                check_num_classes(model, loop.dataloader.dataset, key)
        if isinstance(runner._train_loop, BaseLoop):
            check_batches(runner._train_loop.dataloader)
        check_checkpoint_exists(
            runner._load_from,
            'load_from' + (' (resume=True, e.g. from --resume)'
                           if runner._resume else ''),
            'Pass an existing .pth file, e.g. work_dirs/<config name>/'
            'epoch_<N>.pth, or `--resume` without a file to resume from the '
            'latest checkpoint of the work dir.')


def check_num_classes(model, dataset, loader_key: str) -> None:
    """Raise :class:`ConfigError` where the model's class count differs
    from the dataset's."""
    classes = (getattr(dataset, 'metainfo', None) or {}).get('classes')
    if not classes:
        return
    for key, module in (('model.head.num_classes', getattr(
            model, 'head', None)), ('data_preprocessor.num_classes',
                                    getattr(model, 'data_preprocessor',
                                            None))):
        num_classes = getattr(module, 'num_classes', None)
        if num_classes is not None and num_classes != len(classes):
            raise ConfigError(
                f'{key}={num_classes} does not match the {len(classes)} '
                f'classes of {loader_key}.dataset '
                f'({type(dataset).__name__}: {", ".join(classes)}). Set '
                f'model.head.num_classes={len(classes)} and '
                f'data_preprocessor.num_classes={len(classes)} (or both '
                "to 'auto', to follow the data), or give the dataset the "
                'classes the model is for.')


def check_batches(dataloader) -> None:
    """Raise :class:`ConfigError` where the training loader is empty."""
    if len(dataloader) > 0:
        return
    sampler = dataloader.batch_sampler
    batch_size = getattr(sampler, 'batch_size', dataloader.batch_size)
    drop_last = getattr(sampler, 'drop_last', dataloader.drop_last)
    world_size = get_world_size()
    per_process = len(dataloader.sampler) if hasattr(
        dataloader.sampler, '__len__') else len(dataloader.dataset)
    raise ConfigError(
        f'train_dataloader.batch_size={batch_size} is larger than the '
        f'training set ({len(dataloader.dataset)} images'
        + (f', {per_process} per process over {world_size} processes'
           if world_size > 1 else '')
        + f') and drop_last={drop_last}: an epoch would have no iteration. '
        f'Set train_dataloader.batch_size to at most {per_process} or '
        'drop_last=False.')
