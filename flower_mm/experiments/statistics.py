"""How sure a sweep's results are: the spread over seeds, the 95 %
interval of a difference between two cells, and its verdict in words.

Two sources of noise, one per case (docs/experiments.md#statistics):

- several seeds per cell: the seeds are replicates. The interval of the
  difference of the two cells' means is Welch's t interval (unequal
  variances), so it shows how much the training randomness moves a result
  on this validation set.
- one run per cell: the validation photos are resampled. The paired
  bootstrap draws the photos with replacement, the same draw for both runs,
  and recomputes each run's best-epoch top-1 on it (the best epoch chosen
  again in every draw), so it shows how much the choice of photos moves
  the difference.
"""
import math
from typing import NamedTuple, Optional, Sequence

import numpy as np

LEVEL = 0.95
BOOTSTRAP_RESAMPLES = 2000


class Spread(NamedTuple):
    """Mean and sample standard deviation (n - 1) of n values."""
    n: int
    mean: Optional[float]
    std: Optional[float]  # None below 2 values


def spread(values: Sequence[float]) -> Spread:
    values = [float(v) for v in values]
    n = len(values)
    if n == 0:
        return Spread(0, None, None)
    mean = math.fsum(values) / n
    if n == 1:
        return Spread(1, mean, None)
    variance = math.fsum((v - mean)**2 for v in values) / (n - 1)
    return Spread(n, mean, math.sqrt(variance))


class Interval(NamedTuple):
    """A difference (a - b, in top-1 points) and its interval."""
    difference: float
    low: float
    high: float
    method: str  # how the interval was made, for the table


def welch_interval(a: Sequence[float],
                   b: Sequence[float],
                   level: float = LEVEL) -> Optional[Interval]:
    """Welch's t interval of mean(a) - mean(b); None when it is undefined:
    fewer than 2 values on a side, or no spread at all (every seed of both
    cells scored the same, so there is no noise to measure)."""
    from scipy import stats
    sa, sb = spread(a), spread(b)
    if sa.std is None or sb.std is None:
        return None
    va, vb = sa.std**2 / sa.n, sb.std**2 / sb.n
    difference = sa.mean - sb.mean
    if va + vb == 0:
        return None
    # Welch-Satterthwaite degrees of freedom.
    df = (va + vb)**2 / (va**2 / (sa.n - 1) + vb**2 / (sb.n - 1))
    half = stats.t.ppf(0.5 + level / 2, df) * math.sqrt(va + vb)
    return Interval(difference, difference - half, difference + half,
                    f'Welch t, {sa.n} + {sb.n} seeds')


def paired_bootstrap_interval(correct_a,
                              correct_b,
                              level: float = LEVEL,
                              resamples: int = BOOTSTRAP_RESAMPLES,
                              seed: int = 0) -> Interval:
    """Percentile interval of best top-1 (%) of run a minus run b.

    ``correct_a`` and ``correct_b`` are [validated epochs, photos] arrays of
    0/1 (right or wrong), the photos in the same order for both runs. A
    run's value is its best epoch's top-1; each resample re-chooses it, so
    picking the best of many epochs is part of the noise. Seeded: the same
    runs give the same interval.
    """
    a = np.asarray(correct_a, dtype=np.float64)
    b = np.asarray(correct_b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError('correct_a and correct_b must be [epochs, photos] '
                         f'arrays over the same photos, got {a.shape} and '
                         f'{b.shape}')
    photos = a.shape[1]
    rng = np.random.default_rng(seed)
    # How often each photo is drawn, per resample: [resamples, photos].
    counts = rng.multinomial(photos, np.full(photos, 1 / photos),
                             size=resamples).astype(np.float64)
    best_a = (a @ counts.T).max(axis=0)
    best_b = (b @ counts.T).max(axis=0)
    differences = (best_a - best_b) * 100 / photos
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(differences, [tail, 100 - tail])
    difference = (a.mean(axis=1).max() - b.mean(axis=1).max()) * 100
    return Interval(
        float(difference), float(low), float(high),
        f'paired bootstrap over {photos} val photos')


def verdict(interval: Optional[Interval],
            report_difference: Optional[float]) -> str:
    """The interval in words, against the sign of the report's difference:
    ``holds`` (the whole interval on the report's side of zero),
    ``reversed`` (the whole interval on the other side), ``within noise``
    (it contains zero). Without a report figure: ``differs`` or ``within
    noise``."""
    if interval is None:
        return 'n/a'
    if interval.low <= 0 <= interval.high:
        return 'within noise'
    if not report_difference:
        return 'differs'
    same_side = (interval.low > 0) == (report_difference > 0)
    return 'holds' if same_side else 'reversed'
