"""The sweep's statistics against values worked out by hand: mean, sample
standard deviation, Welch's t interval (t quantiles from a printed table),
the paired bootstrap over photos, and the verdict's wording."""
import numpy as np
import pytest

from flower_mm.experiments.statistics import (Interval, paired_bootstrap_interval,
                                              spread, verdict, welch_interval)

T_975_DF4 = 2.776445  # Student's t, 97.5 % quantile, 4 degrees of freedom


def test_mean_and_sample_std():
    # mean 92; squares of deviations 4 + 0 + 4 over n - 1 = 2: std 2.
    assert spread([90, 92, 94]) == (3, 92.0, 2.0)
    assert spread([91.4]) == (1, 91.4, None)  # one seed: no spread
    assert spread([]) == (0, None, None)
    # 93.2, 94.0: mean 93.6, std |0.8| / sqrt(2).
    n, mean, std = spread([93.2, 94.0])
    assert (n, mean) == (2, pytest.approx(93.6))
    assert std == pytest.approx(0.565685, abs=1e-6)


def test_welch_interval_of_a_clear_gap_holds():
    # Means 94.5 and 90.5, each std 0.5 over 3 seeds: standard error
    # sqrt(0.25/3 + 0.25/3) = 0.408248, Welch's df
    # (1/6)^2 / (2 * (1/12)^2 / 2) = 4, half-width 2.776445 * 0.408248.
    interval = welch_interval([94.0, 94.5, 95.0], [90.0, 90.5, 91.0])
    half = T_975_DF4 * 0.408248
    assert interval.difference == pytest.approx(4.0)
    assert interval.low == pytest.approx(4.0 - half, abs=1e-5)
    assert interval.high == pytest.approx(4.0 + half, abs=1e-5)
    assert interval.method == 'Welch t, 3 + 3 seeds'
    assert verdict(interval, report_difference=1.3) == 'holds'
    # The report claimed the other order: ours says the opposite.
    assert verdict(interval, report_difference=-1.3) == 'reversed'
    assert verdict(interval, report_difference=None) == 'differs'


def test_welch_interval_of_a_gap_inside_the_noise():
    # A 2-point gap with std 1 over 3 seeds each: standard error
    # sqrt(1/3 + 1/3) = 0.816497, df 4; the interval crosses zero.
    interval = welch_interval([92.0, 93.0, 94.0], [90.0, 91.0, 92.0])
    half = T_975_DF4 * 0.816497
    assert interval.difference == pytest.approx(2.0)
    assert (interval.low, interval.high) == pytest.approx(
        (2.0 - half, 2.0 + half), abs=1e-5)
    assert interval.low == pytest.approx(-0.266958, abs=1e-5)
    assert verdict(interval, report_difference=1.2) == 'within noise'
    assert verdict(interval, report_difference=None) == 'within noise'


def test_welch_degrees_of_freedom_follow_the_noisier_cell():
    # Cell b never varies: Welch's df is cell a's n - 1 = 2 (t 4.302653),
    # where pooling both cells would give 5 (t 2.570582). Standard error
    # sqrt(1/3 + 0) = 0.577350; mean difference 2 - 5 = -3.
    interval = welch_interval([1.0, 2.0, 3.0], [5.0, 5.0, 5.0, 5.0])
    half = 4.302653 * 0.577350
    assert (interval.low, interval.high) == pytest.approx(
        (-3 - half, -3 + half), abs=1e-5)
    assert interval.method == 'Welch t, 3 + 4 seeds'
    assert verdict(interval, report_difference=0.8) == 'reversed'


def test_welch_interval_needs_two_seeds_and_some_spread():
    assert welch_interval([92.0], [90.0, 91.0]) is None
    assert welch_interval([92.0, 92.0], [90.0, 90.0]) is None
    assert verdict(None, 1.2) == 'n/a'


def test_paired_bootstrap_of_ten_photos_in_a_hundred():
    # Run a gets all 100 photos right, run b misses 10: a difference of
    # 10 points. Resampling the photos, the count of b's misses drawn is
    # Binomial(100, 0.1), whose 2.5 % and 97.5 % quantiles are 5 and 16
    # (normal approximation: 10 +- 1.96 * 3 = [4.1, 15.9]).
    a = np.ones((1, 100))
    b = np.ones((1, 100))
    b[0, :10] = 0
    interval = paired_bootstrap_interval(a, b)
    assert interval.difference == pytest.approx(10.0)
    assert 4 <= interval.low <= 6
    assert 15 <= interval.high <= 17
    assert interval.method == 'paired bootstrap over 100 val photos'
    assert verdict(interval, report_difference=1.0) == 'holds'
    # Seeded: the same runs, the same interval.
    assert paired_bootstrap_interval(a, b) == interval
    # Two identical runs differ by nothing, in every resample.
    same = paired_bootstrap_interval(b, b)
    assert same == Interval(0.0, 0.0, 0.0, same.method)
    assert verdict(same, report_difference=1.0) == 'within noise'


def test_paired_bootstrap_chooses_the_best_epoch_in_every_resample():
    # Run a: 50 % in both epochs, right on the first half of the photos in
    # epoch 1, on the second half in epoch 2. Run b: epoch 1 of run a.
    # Both score 50, but in a resample a's best epoch is whichever half was
    # drawn more often, never below b: the interval starts at 0 and is
    # wide above it. With the epoch fixed it would be [0, 0].
    a = np.zeros((2, 100))
    a[0, :50] = 1
    a[1, 50:] = 1
    b = a[:1]
    interval = paired_bootstrap_interval(a, b)
    assert interval.difference == 0.0
    assert interval.low == 0.0
    assert interval.high > 5


def test_paired_bootstrap_refuses_runs_over_other_photos():
    with pytest.raises(ValueError, match='same photos'):
        paired_bootstrap_interval(np.ones((1, 10)), np.ones((1, 9)))
