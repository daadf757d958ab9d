"""flower_mm.registration registers every module; flower_mm alone is light."""
import subprocess
import sys

from conftest import REPO_ROOT

PROBE = '''
import sys
import flower_mm, flower_mm.datasets.preparation, flower_mm.utils.user_errors
assert 'torch' not in sys.modules, 'import flower_mm loaded torch'
from mmengine.fileio.backends import backends
from mmpretrain.registry import (DATASETS, HOOKS, LOOPS, MODELS,
                                 OPTIM_WRAPPERS, RUNNERS, TRANSFORMS)
registries = (DATASETS, HOOKS, LOOPS, MODELS, OPTIM_WRAPPERS, RUNNERS,
              TRANSFORMS)


def ours(reg):
    return sorted(name for name, cls in reg.module_dict.items()
                  if cls.__module__.startswith('flower_mm'))


assert not any(ours(reg) for reg in registries), 'registered too early'
import flower_mm.registration
for reg in registries:
    print(reg.name, *ours(reg))
print('backend', 'local_atomic' in backends)
'''


def test_registration_registers_what_flower_mm_alone_does_not():
    proc = subprocess.run([sys.executable, '-c', PROBE], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    added = {line.split()[0]: line.split()[1:]
             for line in proc.stdout.splitlines()}
    assert added == {
        'dataset': ['ClassFolderDataset', 'FlowerDataset'],
        'hook': ['AtomicCheckpointHook', 'BrokenImageHook',
                 'ChannelsLastHook', 'ClassificationReportHook',
                 'ConfigCheckHook', 'MallocTuningHook',
                 'PretrainedWeightsCheckHook', 'ResumableRandomnessHook',
                 'ValPredictionsHook'],
        'loop': ['AmpTestLoop', 'AmpValLoop'],
        'model': ['ExportedClassifier'],
        'optimizer_wrapper': ['DeviceAmpOptimWrapper'],
        'runner': ['FlowerRunner'],
        'transform': ['FastColorJitter', 'RobustLoadImageFromFile'],
        'backend': ['True'],
    }
