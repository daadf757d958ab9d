"""ResumableRandomnessHook's parts: per-epoch, per-sample seeding that a
resumed run replays."""
import random
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from flower_mm.engine.hooks import (SampleSeededPipeline,
                                    seed_everything_for_epoch)
from flower_mm.engine.hooks.resumable_randomness_hook import \
    iter_pipeline_datasets


def draw_randoms(results: dict) -> tuple:
    """A stand-in pipeline drawing from every RNG transforms use."""
    return (results['sample_idx'], random.random(), float(np.random.rand()),
            float(torch.rand(1)))


class IndexDataset(Dataset):

    def __init__(self, length: int, pipeline) -> None:
        self.length, self.pipeline = length, pipeline

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, idx):
        return self.pipeline(dict(sample_idx=idx))


def test_sample_seeded_pipeline_depends_on_seed_epoch_and_index_only():
    pipeline = SampleSeededPipeline(draw_randoms, seed=0)
    pipeline.set_epoch(1)
    first = pipeline(dict(sample_idx=3))
    np.random.seed(123), random.seed(123), torch.manual_seed(123)
    states = (random.getstate(), np.random.get_state()[1].copy(),
              torch.get_rng_state())
    assert pipeline(dict(sample_idx=3)) == first
    # Main process: the caller's RNG states are put back.
    assert random.getstate() == states[0]
    assert np.array_equal(np.random.get_state()[1], states[1])
    assert torch.equal(torch.get_rng_state(), states[2])
    assert pipeline(dict(sample_idx=4))[1:] != first[1:]
    pipeline.set_epoch(2)
    assert pipeline(dict(sample_idx=3))[1:] != first[1:]
    other_seed = SampleSeededPipeline(draw_randoms, seed=1)
    other_seed.set_epoch(1)
    assert other_seed(dict(sample_idx=3))[1:] != first[1:]
    with pytest.raises(KeyError, match='sample_idx'):
        pipeline(dict(img_path='a.jpg'))


def epoch_samples(loader, pipeline, epoch) -> dict:
    pipeline.set_epoch(epoch)
    return {int(s[0]): tuple(map(float, s[1:])) for s in _rows(loader)}


def _rows(loader):
    for batch in loader:
        yield from zip(*batch)


def test_persistent_workers_see_the_epoch_and_resume_replays_it():

    def make_loader():
        pipeline = SampleSeededPipeline(draw_randoms, seed=0)
        loader = DataLoader(
            IndexDataset(8, pipeline),
            batch_size=2,
            shuffle=False,
            num_workers=2,
            persistent_workers=True)
        return loader, pipeline

    loader, pipeline = make_loader()
    epochs = [epoch_samples(loader, pipeline, e) for e in range(3)]
    assert epochs[0] != epochs[1] != epochs[2]  # fresh crops every epoch
    # A "resumed" run: new workers, starting at epoch 1.
    resumed_loader, resumed_pipeline = make_loader()
    assert epoch_samples(resumed_loader, resumed_pipeline, 1) == epochs[1]
    assert epoch_samples(resumed_loader, resumed_pipeline, 2) == epochs[2]


def test_pipelines_are_found_inside_dataset_wrappers():
    first, second = SimpleNamespace(pipeline=abs), SimpleNamespace(
        pipeline=abs)
    wrapped = SimpleNamespace(datasets=[
        first, SimpleNamespace(dataset=second, times=2)
    ])  # like ConcatDataset([first, RepeatDataset(second)])
    assert list(iter_pipeline_datasets(wrapped)) == [first, second]
    with pytest.raises(TypeError, match='cannot find the pipeline of'):
        list(iter_pipeline_datasets(SimpleNamespace(images=[])))


def test_main_process_rngs_are_reseeded_per_epoch():

    def draws():
        return (random.random(), float(np.random.rand()), float(torch.rand(1)))

    seed_everything_for_epoch(0, 1)
    epoch_1 = draws()
    draws(), draws()  # whatever ran since (validation, another epoch)
    seed_everything_for_epoch(0, 1)
    assert draws() == epoch_1
    seed_everything_for_epoch(0, 2)
    assert draws() != epoch_1
