"""Where flower-mm copies or overrides private upstream code, the upstream
source must still be the one the copy was made from.

A new MMEngine or MMPretrain may change these functions; then this test
fails and names the flower-mm code to re-check against the new version
before updating the recorded hash.
"""
import hashlib
import inspect

import pytest
from mmengine.hooks import CheckpointHook
from mmengine.runner import ValLoop, loops
from mmpretrain.datasets import CustomDataset

from flower_mm.compat import MMCV_ADJUST_HUE

# (upstream function, sha256[:16] of its source when copied, our code)
COPIES = [
    (CheckpointHook._save_checkpoint_with_step, 'cdbc1b54c7c88d95',
     'flower_mm/engine/hooks/atomic_checkpoint_hook.py: '
     'AtomicCheckpointHook._save_checkpoint_with_step (a reordered copy)'),
    (loops._update_losses, 'ca8df05154021be2',
     'flower_mm/engine/runner/amp_loops.py: _AmpInferenceMixin.run_iter '
     '(calls this private helper)'),
    (ValLoop.run_iter, '758a78fa25a28af9',
     'flower_mm/engine/runner/amp_loops.py: _AmpInferenceMixin.run_iter '
     '(replaces it)'),
    (MMCV_ADJUST_HUE, '96d9e85ccb41084b', 'flower_mm/compat.py: adjust_hue (a copy, its '
     'uint8 hue shift wrapped for numpy 2)'),
    (CustomDataset._find_samples, '710f23b19677db3a',
     'flower_mm/datasets/class_folder_dataset.py: '
     'ClassFolderDataset._find_samples (overrides it)'),
]


@pytest.mark.parametrize('upstream,recorded,ours', COPIES,
                         ids=[c[0].__qualname__ for c in COPIES])
def test_upstream_code_we_copy_is_unchanged(upstream, recorded, ours):
    source = inspect.getsource(upstream)
    digest = hashlib.sha256(source.encode()).hexdigest()[:16]
    where = f'{upstream.__module__}.{upstream.__qualname__}'
    assert digest == recorded, (
        f'{where} changed upstream (source sha256 {digest}, recorded '
        f'{recorded}): re-check {ours} against the new version, then update '
        'the hash in tests/test_engine/test_upstream_copies.py')
