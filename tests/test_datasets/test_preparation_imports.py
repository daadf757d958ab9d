"""tools/prepare_flowers.py starts without torch or MMPretrain."""
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_prepare_tool_imports_no_torch():
    proc = subprocess.run(
        [sys.executable, '-X', 'importtime', 'tools/prepare_flowers.py',
         '--help'],
        cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert '--val-ratio' in proc.stdout
    imported = {line.split('|')[-1].strip() for line in
                proc.stderr.splitlines() if line.startswith('import time:')}
    assert 'flower_mm.datasets.preparation' in imported
    heavy = sorted(m for m in imported
                   if m.split('.')[0] in ('torch', 'mmpretrain', 'mmcv'))
    assert not heavy, f'prepare_flowers.py --help imported {heavy[:5]}'

