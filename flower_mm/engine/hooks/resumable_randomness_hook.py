"""Training randomness that depends on (seed, epoch, sample), not on history,
so a run resumed from an epoch checkpoint repeats the uninterrupted one."""
import multiprocessing
import random
import warnings
from typing import Iterator, List

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.runner import EpochBasedTrainLoop
from mmpretrain.registry import HOOKS
from torch.utils.data import get_worker_info

# Distinct first words keep the three seed families apart.
_MAIN_PROCESS, _LOADER, _SAMPLE = 0x6d61696e, 0x6c6f6164, 0x73616d70


def _seed_words(*entropy: int, n: int = 4) -> List[int]:
    """``n`` well-mixed 32-bit seeds from non-negative integers."""
    state = np.random.SeedSequence([int(e) for e in entropy]).generate_state(n)
    return [int(word) for word in state]


class SampleSeededPipeline:
    """A dataset pipeline whose randomness is a function of (seed, epoch,
    sample index) only.

    Before each sample it seeds Python's ``random``, numpy's global RNG and
    torch's CPU generator (what MMPretrain/MMCV transforms draw from) from
    ``(seed, stream, epoch, results['sample_idx'])``. The epoch lives in
    shared memory, so dataloader workers, persistent ones included, see the
    value the main process sets before each epoch. In the main process
    (``num_workers=0``) the previous RNG states are put back afterwards, so
    training randomness is not disturbed; in a worker they are left seeded,
    so a refetch after a failed sample (``BaseDataset._rand_another``) is
    deterministic too.
    """

    def __init__(self, pipeline, seed: int, stream: int = 0) -> None:
        self.pipeline = pipeline
        self.seed = seed
        self.stream = stream
        # Shared with the workers (inherited at fork, passed at spawn).
        self._epoch = multiprocessing.RawValue('q', 0)

    @property
    def epoch(self) -> int:
        return self._epoch.value

    def set_epoch(self, epoch: int) -> None:
        self._epoch.value = epoch

    @property
    def transforms(self):
        """The wrapped pipeline's transforms (MMEngine's ``Compose``)."""
        return self.pipeline.transforms

    def __call__(self, results: dict):
        if 'sample_idx' not in results:
            raise KeyError(
                'SampleSeededPipeline needs results["sample_idx"], which '
                "MMEngine's BaseDataset.get_data_info sets; the dataset "
                'must derive from mmengine.dataset.BaseDataset.')
        words = _seed_words(_SAMPLE, self.seed, self.stream, self.epoch,
                            results['sample_idx'])
        saved = None if get_worker_info() is not None else (
            random.getstate(), np.random.get_state(), torch.get_rng_state())
        random.seed(words[0])
        np.random.seed(words[1])
        torch.default_generator.manual_seed((words[2] << 32) | words[3])
        try:
            return self.pipeline(results)
        finally:
            if saved is not None:
                random.setstate(saved[0])
                np.random.set_state(saved[1])
                torch.set_rng_state(saved[2])

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(seed={self.seed}, '
                f'stream={self.stream}, pipeline={self.pipeline!r})')


def iter_pipeline_datasets(dataset) -> Iterator:
    """The datasets holding a ``pipeline`` inside dataset wrappers
    (ConcatDataset, RepeatDataset, ClassBalancedDataset, ...)."""
    if hasattr(dataset, 'datasets'):
        for sub_dataset in dataset.datasets:
            yield from iter_pipeline_datasets(sub_dataset)
    elif callable(getattr(dataset, 'pipeline', None)):
        yield dataset
    elif hasattr(dataset, 'dataset'):
        yield from iter_pipeline_datasets(dataset.dataset)
    else:
        raise TypeError(
            f'ResumableRandomnessHook cannot find the pipeline of '
            f'{type(dataset).__name__}: it has no `pipeline`, `dataset` or '
            '`datasets` attribute. Remove default_hooks.resumable_randomness '
            'for this dataset.')


@HOOKS.register_module()
class ResumableRandomnessHook(Hook):
    """Make each epoch's randomness independent of the epochs before it.

    MMEngine restores weights, optimizer, schedulers and the sampler order
    (``DefaultSampler`` shuffles with ``seed + epoch``) on ``--resume``, but
    not the random streams: dataloader workers are seeded from
    ``(seed, worker_id)`` only, so persistent workers carry their augmentation
    streams across epochs while a resumed run restarts them, and the main
    process' RNGs (dropout, batch augments such as Mixup) continue from
    wherever training and validation left them. This hook, for
    ``EpochBasedTrainLoop`` training:

    - wraps each train dataset's pipeline in :class:`SampleSeededPipeline`,
      seeding the augmentation of every sample from ``(seed, epoch, index)``:
      independent of worker count, worker history and
      ``persistent_workers``; it also stops non-persistent workers from
      replaying the same streams every epoch;
    - before each train epoch, reseeds ``random``, numpy and torch (CPU and
      CUDA) in the main process from ``(seed, epoch)``, and gives the train
      dataloader its own generator (seeded the same way) for the worker base
      seed, so creating a dataloader iterator does not shift the global
      stream.

    Epoch-end checkpoints therefore need no RNG state: resuming at epoch
    ``e`` replays epoch ``e`` exactly. ``seed`` is the runner's
    (``randomness.seed``; MMEngine stores it in checkpoints and restores it
    on resume).

    Args:
        enable (bool): False turns the hook off (MMEngine's stock
            randomness), e.g. ``--cfg-options
            default_hooks.resumable_randomness.enable=False``.
    """

    priority = 'VERY_HIGH'

    def __init__(self, enable: bool = True) -> None:
        self.enable = enable
        self._pipelines: List[SampleSeededPipeline] = []
        self._enabled = False

    def before_train(self, runner) -> None:
        self._enabled = False
        if not self.enable:
            return
        self._enabled = isinstance(runner.train_loop, EpochBasedTrainLoop)
        if not self._enabled:
            warnings.warn(
                'ResumableRandomnessHook only supports EpochBasedTrainLoop; '
                f'with {type(runner.train_loop).__name__} it does nothing.')
            return
        self._pipelines = []
        dataloader = runner.train_dataloader
        for stream, dataset in enumerate(
                iter_pipeline_datasets(dataloader.dataset)):
            pipeline = dataset.pipeline
            if isinstance(pipeline, SampleSeededPipeline):  # train() again
                pipeline = pipeline.pipeline
            dataset.pipeline = SampleSeededPipeline(pipeline, runner.seed,
                                                    stream)
            self._pipelines.append(dataset.pipeline)
        if getattr(dataloader, 'generator', None) is None:
            dataloader.generator = torch.Generator()
        runner.logger.info(
            'ResumableRandomnessHook: augmentation seeded per sample from '
            f'(seed={runner.seed}, epoch, index) in {len(self._pipelines)} '
            'train pipeline(s); main-process RNGs reseeded every epoch.')

    def before_train_epoch(self, runner) -> None:
        if not self._enabled:
            return
        epoch = runner.epoch
        for pipeline in self._pipelines:
            pipeline.set_epoch(epoch)
        seed_everything_for_epoch(runner.seed, epoch)
        generator = getattr(runner.train_dataloader, 'generator', None)
        if generator is not None:
            words = _seed_words(_LOADER, runner.seed, epoch, n=2)
            generator.manual_seed((words[0] << 32) | words[1])


def seed_everything_for_epoch(seed: int, epoch: int) -> None:
    """Seed the main process' ``random``, numpy and torch (all devices)
    RNGs from ``(seed, epoch)``."""
    words = _seed_words(_MAIN_PROCESS, seed, epoch)
    random.seed(words[0])
    np.random.seed(words[1])
    torch.manual_seed((words[2] << 32) | words[3])
