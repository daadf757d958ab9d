"""tools/sweep.py: a sweep of two tiny configs end to end, resumed after an
interruption, its tables and paired-bootstrap difference checked against
the runs' own logs and val predictions; an older sweep's layout."""
import glob
import json
import os
import os.path as osp
import runpy
import sys

import pytest
from conftest import config_path, run_tool
from sweep_checks import (SWEEP, logged_val_top1, read_csv, sweep_options,
                          write_config)

from flower_mm.experiments import (EXPERIMENTS, SlurmLauncher, Sweep,
                                   SweepError, resolve_experiments,
                                   unique_cells)


def assert_table_matches_logs(work_root, epochs):
    """One seed per config: each cell's row is its run's log."""
    rows = {row['config']: row for row in read_csv(work_root / 'results.csv')}
    assert set(rows) == set(epochs)
    markdown = (work_root / 'results.md').read_text()
    for name, max_epochs in epochs.items():
        top1 = logged_val_top1(work_root / name / 'seed0')
        assert sorted(top1) == list(range(1, max_epochs + 1))
        best_epoch = max(top1, key=top1.get)
        row = rows[name]
        assert (row['n'], row['seeds']) == ('1', '0')
        assert float(row['best_top1']) == top1[best_epoch]
        assert float(row['best_top1_per_seed']) == top1[best_epoch]
        assert row['best_top1_std'] == ''  # one seed: no spread
        assert float(row['final_top1']) == top1[max_epochs]
        assert int(row['epochs_done']) == int(row['max_epochs']) == max_epochs
        assert row['status'] == 'done'
        assert float(row['images_per_s']) > 0
        best = f'{top1[best_epoch]:.2f}'
        assert (f'| `{name}` | - | 1 | {best} | {best} ({best_epoch}) | '
                f'{top1[max_epochs]:.2f} |') in markdown
    with open(work_root / 'results.png', 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'


def snapshot(work_dir):
    return {
        p: os.stat(p).st_mtime_ns
        for p in glob.glob(f'{work_dir}/**', recursive=True)
    }


def sweep_in_process(work_root, configs, options, seeds=1):
    """Run a sweep as tools/sweep.py does; what it logged."""
    log = work_root / 'sweep.log'
    start = log.stat().st_size
    assert Sweep(configs, str(work_root), options, seeds=seeds).run() == []
    return log.read_text()[start:]


def val_predictions_top1(run_dir):
    """epoch -> top-1 (%) recomputed from ValPredictionsHook's files, and
    the photos of each epoch."""
    top1, photos = {}, set()
    for path in glob.glob(f'{run_dir}/val_predictions/epoch_*.json'):
        record = json.loads(open(path).read())
        right = [g == p for g, p in zip(record['gt_label'],
                                        record['pred_label'])]
        top1[record['epoch']] = 100 * sum(right) / len(right)
        photos.add(tuple(record['img_path']))
    return top1, photos


def test_sweep_runs_skips_finished_and_resumes(tmp_path, flower_data_root,
                                               resnet18_ckpt):
    # Two tiny configs inheriting the repo's; data, image size, batch and
    # checkpoint come as --cfg-options, each config keeps its epochs.
    epochs = {'tiny_r18': 1, 'tiny_r18_bs64': 2}
    parents = {
        'tiny_r18': 'resnet18_flowers.py',
        'tiny_r18_bs64': 'resnet18_flowers_bs64.py'
    }
    configs = [
        write_config(tmp_path / f'{name}.py', parents[name], max_epochs)
        for name, max_epochs in epochs.items()
    ]
    options = sweep_options(flower_data_root, resnet18_ckpt)
    work_root = tmp_path / 'sweep'
    cmd = [
        SWEEP, *configs, '--work-root', work_root, '--cfg-options', *options
    ]

    out = run_tool(cmd, cwd=tmp_path).stdout
    assert '[1/2] tiny_r18/seed0 (not run)' in out
    assert '[2/2] tiny_r18_bs64/seed0 (not run)' in out
    assert 'Epoch(train) [2]' in out  # the runs' logs stream through
    assert_table_matches_logs(work_root, epochs)
    for name in epochs:
        run_dir = work_root / name / 'seed0'
        state = json.loads((run_dir / 'sweep_run.json').read_text())
        assert state['status'] == 'done'
        assert state['cfg_options'] == options
        assert state['seed'] == 0
        # Its output, also kept in its work dir.
        assert 'Epoch(train) [1]' in (run_dir / 'train.log').read_text()
        # ValPredictionsHook: which photos each epoch got right, the same
        # accuracy as the logged one, on the 15 val photos.
        top1, photos = val_predictions_top1(run_dir)
        assert top1 == pytest.approx(logged_val_top1(run_dir), abs=1e-4)
        assert [len(p) for p in photos] == [15]

    # One run per config: the difference comes with a paired bootstrap
    # over the val photos, the same photos for both runs.
    difference, = read_csv(work_root / 'results_differences.csv')
    logs = {n: logged_val_top1(work_root / n / 'seed0') for n in epochs}
    ours = max(logs['tiny_r18_bs64'].values()) - max(logs['tiny_r18'].values())
    assert difference['difference'] == 'tiny_r18_bs64 - tiny_r18'
    assert float(difference['ours']) == pytest.approx(ours)
    assert difference['method'] == 'paired bootstrap over 15 val photos'
    low, high = float(difference['low']), float(difference['high'])
    assert low <= ours <= high
    assert difference['verdict'] == ('within noise' if low <= 0 <= high else
                                     'differs')

    # Run again (in this process, to save a start-up): nothing trains,
    # nothing in the work dirs changes.
    before = snapshot(work_root / 'tiny_r18') | snapshot(
        work_root / 'tiny_r18_bs64')
    out = sweep_in_process(work_root, configs, options)
    assert out.count('skipped (done)') == 2
    assert 'Epoch(train)' not in out and 'training into' not in out
    assert snapshot(work_root / 'tiny_r18') | snapshot(
        work_root / 'tiny_r18_bs64') == before

    # Interrupt the second run after its first epoch, as a killed sweep
    # leaves it: state "running", last checkpoint epoch 1.
    run_dir = work_root / 'tiny_r18_bs64' / 'seed0'
    for path in glob.glob(f'{run_dir}/*epoch_2.pth'):
        os.remove(path)
    (run_dir / 'last_checkpoint').write_text(str(run_dir / 'epoch_1.pth'))
    state = json.loads((run_dir / 'sweep_run.json').read_text())
    (run_dir / 'sweep_run.json').write_text(
        json.dumps(dict(state, status='running')))
    sessions = set(glob.glob(f'{run_dir}/*/vis_data/scalars.json'))

    out = sweep_in_process(work_root, configs, options)
    assert '[1/2] skipped (done) tiny_r18/seed0' in out
    assert '[2/2] tiny_r18_bs64/seed0 (running)' in out
    assert 'tiny_r18_bs64/seed0: resuming from epoch_1.pth' in out
    new_sessions = set(
        glob.glob(f'{run_dir}/*/vis_data/scalars.json')) - sessions
    assert len(new_sessions) == 1
    trained_epochs = {
        json.loads(line)['epoch']
        for line in open(new_sessions.pop()) if '"loss"' in line
    }
    assert trained_epochs == {2}  # resumed, not restarted
    assert (run_dir / 'epoch_2.pth').is_file()
    assert_table_matches_logs(work_root, epochs)

    # The finished runs were made with these options: others are refused.
    with pytest.raises(SweepError, match='holds a run of tiny_r18'):
        Sweep(configs, str(work_root), options[:-1])

    # A sweep from before --seeds left its run in <work root>/<config>,
    # with no seed in its state: --seeds 1 finds it done, --seeds 2 adds
    # seed1/ beside it.
    older = work_root / 'tiny_r18'
    for path in (older / 'seed0').iterdir():
        path.rename(older / path.name)
    (older / 'seed0').rmdir()
    state = json.loads((older / 'sweep_run.json').read_text())
    del state['seed']
    (older / 'sweep_run.json').write_text(json.dumps(state))
    before = snapshot(older)
    out = sweep_in_process(work_root, configs, options)
    assert (f'tiny_r18/seed0: the run an earlier sweep made in {older} '
            '(status: done); kept there') in out
    assert '[1/2] skipped (done) tiny_r18/seed0' in out
    assert snapshot(older) == before
    rows = {r['config']: r for r in read_csv(work_root / 'results.csv')}
    assert float(rows['tiny_r18']['best_top1']) == max(
        logged_val_top1(older).values())
    assert [run.work_dir for run in Sweep(configs, str(work_root), options,
                                          seeds=2).runs][:2] == [
        str(older), str(older / 'seed1')]


def test_named_experiments_table_report_figures(tmp_path):
    work_root = tmp_path / 'sweep'
    sweep = Sweep(['table1', 'table3'], str(work_root), seeds=3)
    assert [run.name for run in sweep.runs[:4]] == [
        'resnet18_flowers/seed0', 'resnet18_flowers/seed1',
        'resnet18_flowers/seed2', 'resnet18_flowers_bs64/seed0'
    ]
    assert sweep.runs[1].work_dir == str(work_root / 'resnet18_flowers' /
                                         'seed1')
    assert len(sweep.runs) == 15
    assert sweep.run(collect_only=True) == []
    rows = read_csv(work_root / 'results.csv')
    expected = [(e, c.name, c.report_top1) for e in ('table1', 'table3')
                for c in EXPERIMENTS[e].cells]
    assert [(r['experiment'], r['config'], float(r['report_top1']))
            for r in rows] == expected
    assert {r['status'] for r in rows} == {'not run'}
    assert {r['max_epochs'] for r in rows} == {'30'}
    markdown = (work_root / 'results.md').read_text()
    assert '## table1: Batch size' in markdown
    assert '| batch 64 | `resnet18_flowers_bs64` | 91.4 | 0 | - |' in markdown
    assert (work_root / 'results.png').stat().st_size > 0
    # The differences the report draws: its ranking, one step at a time.
    differences = read_csv(work_root / 'results_differences.csv')
    assert [(d['experiment'], d['difference'], float(d['report']), d['ours'],
             d['verdict'], d['note']) for d in differences] == [
        ('table1', 'batch 128 - batch 64', 1.2, '', 'n/a',
         'runs not done yet'),
        ('table1', 'batch 64 - batch 32', 1.2, '', 'n/a',
         'runs not done yet'),
        ('table3', 'frozen - nothing frozen', 1.3, '', 'n/a',
         'runs not done yet'),
    ]
    assert ('| batch 128 - batch 64 | +1.2 | - | - | runs not done yet | '
            'n/a |') in markdown


def test_all_trains_each_config_once():
    experiments = resolve_experiments(['all'])
    assert [e.name for e in experiments] == ['table1', 'table2', 'table3']
    names = [c.name for c in unique_cells(experiments)]
    assert names == [
        'resnet18_flowers', 'resnet18_flowers_bs64', 'resnet18_flowers_bs128',
        'resnet50_flowers', 'densenet121_flowers', 'resnet50_flowers_unfrozen'
    ]


def test_bad_targets_fail_before_training(tmp_path, monkeypatch):
    with pytest.raises(SweepError, match='"tabel1" is neither an experiment'):
        resolve_experiments(['tabel1'])
    with pytest.raises(SweepError, match='missing.py" does not exist'):
        resolve_experiments([str(tmp_path / 'missing.py')])
    clash = tmp_path / 'resnet18_flowers.py'
    clash.write_text(f'_base_ = {config_path("resnet18_flowers.py")!r}\n')
    with pytest.raises(SweepError, match='share the name resnet18_flowers'):
        unique_cells(resolve_experiments(['table1', str(clash)]))
    with pytest.raises(SweepError, match='"lr" is not KEY=VALUE'):
        Sweep(['table3'], str(tmp_path / 'w'), ['lr'])
    # A typo in --cfg-options, caught as tools/train.py would, before any
    # run starts.
    with pytest.raises(SweepError, match='load_form'):
        Sweep(['table3'], str(tmp_path / 'w'), ['load_form=x.pth'])
    with pytest.raises(SweepError, match='--seeds 0: train at least one'):
        Sweep(['table3'], str(tmp_path / 'w'), seeds=0)
    with pytest.raises(SweepError, match='has no fixed randomness.seed, so '
                       'its seeds would not be reproducible'):
        Sweep(['table3'], str(tmp_path / 'w'), ['randomness.seed=None'])

    def sweep_exits_with(*args):
        """tools/sweep.py ARGS in this process: its error line."""
        monkeypatch.setattr(sys, 'argv', [SWEEP, *map(str, args)])
        with pytest.raises(SystemExit) as exit_info:
            runpy.run_path(SWEEP, run_name='__main__')
        return str(exit_info.value)

    # The tool exits with the message, having made no work dir.
    work_root = tmp_path / 'w'
    assert sweep_exits_with('tabel1', '--work-root', work_root) == (
        'error: "tabel1" is neither an experiment (table1, table2, table3, '
        'all) nor a config file.')
    assert sweep_exits_with('table3', '--gpus', '2', '--launcher', 'slurm',
                            '--partition', 'p', '--work-root', work_root) == (
        'error: --gpus is for --launcher local; with Slurm, give each job '
        'its GPUs with --gpus-per-run.')
    assert sweep_exits_with('table3', '--launcher', 'slurm', '--work-root',
                            work_root) == (
        'error: --launcher slurm needs --partition P (`sinfo` lists the '
        'partitions).')
    assert sweep_exits_with('table3', '--partition', 'p', '--time', '1:00',
                            '--work-root', work_root) == (
        'error: --partition, --time only go with --launcher slurm.')
    assert not osp.exists(work_root)


def test_two_sweeps_in_one_work_root_are_refused(tmp_path, monkeypatch):
    work_root = str(tmp_path / 'sweep')
    held = Sweep(['table3'], work_root)._lock()
    # Past the lock, this launcher would stop at once: no sbatch on PATH.
    monkeypatch.setenv('PATH', '')
    try:
        with pytest.raises(SweepError, match=(
                f'Another tools/sweep.py \\(pid {os.getpid()}\\) is working '
                f'in {work_root}: wait for it to end, or use another')):
            Sweep(['table3'], work_root,
                  launcher=SlurmLauncher('flowers')).run()
    finally:
        held.release()
    # Collecting results needs no lock.
    assert Sweep(['table3'], work_root).run(collect_only=True) == []
