"""FastColorJitter gives MMPretrain's ColorJitter's results, faster."""
import numpy as np
import pytest

from flower_mm.transforms import FastColorJitter


@pytest.mark.parametrize('kwargs, max_diff', [
    (dict(brightness=0.4), 0),
    (dict(saturation=0.4), 0),
    (dict(hue=0.1), 0),
    (dict(contrast=0.4), 1),  # float32 blend vs table: rounding
    (dict(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1), 3),
])
def test_fast_color_jitter_matches_mmpretrain(kwargs, max_diff):
    from mmpretrain.datasets.transforms import ColorJitter
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
    img[10:30, 10:30] = (30, 160, 220)  # some saturated colour
    reference, fast = ColorJitter(**kwargs, backend='cv2'), \
        FastColorJitter(**kwargs)
    changed, diffs = 0, []
    for seed in range(30):
        np.random.seed(seed)
        expected = reference.transform(dict(img=img.copy()))['img']
        np.random.seed(seed)
        result = fast.transform(dict(img=img.copy()))['img']
        assert result.dtype == np.uint8 and result.shape == img.shape
        diff = np.abs(result.astype(int) - expected.astype(int))
        assert diff.max() <= max_diff, f'seed {seed}: {diff.max()}'
        diffs.append(diff.mean())
        changed += int(np.abs(result.astype(int) - img).mean() > 1)
    assert np.mean(diffs) < 0.01  # differences are rare rounding cases
    assert changed >= 20  # it does jitter

    # float images take MMPretrain's own code path
    if len(kwargs) < 4:
        return
    np.random.seed(3)
    expected = reference.transform(dict(img=img.astype(np.float32)))['img']
    np.random.seed(3)
    result = fast.transform(dict(img=img.astype(np.float32)))['img']
    np.testing.assert_allclose(result, expected)
