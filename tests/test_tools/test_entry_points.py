"""Every script starts as a user starts it: ``python tools/X.py`` in a new
interpreter, without PYTHONPATH, from another folder, finds ``flower_mm``
through the editable install alone.

The other tool tests run in forks of an interpreter that imported
flower_mm already (tests/tool_forkserver.py), where a tool whose own import
line broke, or that forgot ``import flower_mm.registration``, would still
pass. Here each script gets one new interpreter (~4-9 s of imports for the
ones that load torch): a tiny run through its ``main`` where one is cheap,
an early user error (after every import) where a real run is not.
``tools/train.py`` is not here: the README's train line already runs in a
new interpreter (test_quick_start.py).
"""
import importlib.metadata
import json
import sys
from pathlib import Path

import pytest
from conftest import (REPO_ROOT, config_path, load_script, random_jpeg,
                      run_tool)

from flower_mm.datasets import FLOWER_CLASSES

SCRIPTS = [
    'tools/train.py', 'tools/test.py', 'tools/infer.py', 'tools/export.py',
    'tools/vis_cam.py', 'tools/serve.py', 'tools/sweep.py',
    'tools/plot_curves.py', 'tools/prepare_flowers.py',
    'benchmarks/throughput.py', 'benchmarks/check_images.py',
    'benchmarks/serve_load.py'
]
CONFIG = config_path('resnet50_flowers.py')
MISSING = 'error: checkpoint "missing.pth" does not exist'


def test_every_script_is_listed():
    on_disk = sorted(
        str(p.relative_to(REPO_ROOT))
        for p in [*REPO_ROOT.glob('tools/*.py'),
                  *REPO_ROOT.glob('benchmarks/*.py')])
    assert on_disk == sorted(SCRIPTS)


def test_the_project_is_installed_editable_from_this_checkout():
    """requirements.txt's `-e .`: the tools' flower_mm is this folder's
    (pip records where it installed from; the egg-info that the build
    leaves in the checkout records nothing)."""
    [origin] = [
        json.loads(d.read_text('direct_url.json'))
        for d in importlib.metadata.distributions(name='flower-mm')
        if d.read_text('direct_url.json')
    ]
    assert origin['dir_info'] == {'editable': True}
    assert Path(origin['url'].removeprefix('file://')) == REPO_ROOT


def run_main(script: str, argv: list, monkeypatch):
    """``script``'s main() in this process, with ``argv``."""
    module = load_script(REPO_ROOT / script)
    monkeypatch.setattr(sys, 'argv', [Path(script).name, *argv])
    return module.main()


@pytest.mark.parametrize('script', SCRIPTS)
def test_help(script, monkeypatch, capsys):
    """The whole help text renders (an unescaped % breaks only --help);
    here, in this process: the fresh interpreters below import each."""
    with pytest.raises(SystemExit) as exit_:
        run_main(script, ['--help'], monkeypatch)
    assert exit_.value.code in (0, None)
    out = capsys.readouterr().out
    assert out.startswith(f'usage: {Path(script).name} ') and '--' in out


def write_scalars(work_dir: Path) -> None:
    vis = work_dir / '20260101_000000' / 'vis_data'
    vis.mkdir(parents=True)
    (vis / 'scalars.json').write_text(''.join(
        json.dumps(r) + '\n' for r in (
            dict(epoch=1, iter=1, step=1, loss=1.5, lr=0.01),
            dict(epoch=2, iter=2, step=2, loss=0.9, lr=0.01),
            {'accuracy/top1': 60.0, 'step': 2})))


def write_photos(root: Path) -> None:
    for label, cls in enumerate(FLOWER_CLASSES):
        (root / cls).mkdir(parents=True)
        for i in range(2):
            (root / cls / f'{i}.jpg').write_bytes(random_jpeg(10 * label + i))


# script -> (arguments, exit status, what stdout or stderr ends with); the
# light ones' --help is a run of its own: it costs a tenth of a second.
TINY_RUNS = {
    'benchmarks/throughput.py': (['--help'], 0, ''),
    'benchmarks/serve_load.py': (['--help'], 0, ''),
    'tools/test.py': ([CONFIG, 'missing.pth'], 1, MISSING),
    'tools/infer.py': ([CONFIG, 'missing.pth', 'x.jpg'], 2, MISSING),
    'tools/export.py': ([CONFIG, 'missing.pth', '--format', 'onnx'], 2,
                        MISSING),
    'tools/vis_cam.py': ([CONFIG, 'missing.pth', 'x.jpg', '--out', 'cams'],
                         2, MISSING),
    'tools/serve.py': ([CONFIG, 'missing.pth'], 2, MISSING),
    'tools/sweep.py': (['table9'], 1, 'error: "table9" is neither an '
                       'experiment'),
    'tools/plot_curves.py': (['work'], 0, 'Training curves written to '
                             'work/training_curves.png'),
    'tools/prepare_flowers.py': (['photos', '--out', 'split',
                                  '--no-progress'], 0,
                                 '(0 rejected, 0 ignored)'),
    'benchmarks/check_images.py': (['--num', '4', '--workers', '1'], 0,
                                   '"photos": 4'),
}


@pytest.mark.parametrize('script', sorted(TINY_RUNS))
def test_tiny_run_in_a_fresh_interpreter(script, tmp_path):
    args, status, ending = TINY_RUNS[script]
    write_scalars(tmp_path / 'work')
    write_photos(tmp_path / 'photos')
    proc = run_tool([REPO_ROOT / script, *args], cwd=tmp_path,
                    env={'PYTHONPATH': None}, check=False, fresh=True)
    assert proc.returncode == status, proc.stderr[-3000:]
    assert 'Traceback' not in proc.stderr, proc.stderr[-3000:]
    last = (proc.stdout if status == 0 else proc.stderr).strip()
    assert ending in last.splitlines()[-1], last[-3000:]
