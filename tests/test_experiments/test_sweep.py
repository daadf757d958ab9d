"""tools/sweep.py: a sweep of two tiny configs end to end, resumed after an
interruption, and its table checked against the runs' own logs."""
import csv
import glob
import json
import os
import os.path as osp
import runpy
import sys

import pytest
from conftest import REPO_ROOT, config_path, run_tool, tiny_cfg_options

from flower_mm.experiments import (EXPERIMENTS, Sweep, SweepError,
                                   resolve_experiments, unique_cells)
from flower_mm.experiments.results import RunResult, results_figure

SWEEP = str(REPO_ROOT / 'tools' / 'sweep.py')


def logged_val_top1(work_dir):
    """epoch -> val top-1, read straight from the runs' scalars.json."""
    top1 = {}
    for path in sorted(glob.glob(f'{work_dir}/*/vis_data/scalars.json')):
        for line in open(path):
            record = json.loads(line)
            if 'accuracy/top1' in record:
                top1[record['step']] = record['accuracy/top1']
    return top1


def read_csv(work_root):
    with open(work_root / 'results.csv') as f:
        return {row['config']: row for row in csv.DictReader(f)}


def assert_table_matches_logs(work_root, epochs):
    rows = read_csv(work_root)
    assert set(rows) == set(epochs)
    markdown = (work_root / 'results.md').read_text()
    for name, max_epochs in epochs.items():
        top1 = logged_val_top1(work_root / name)
        assert sorted(top1) == list(range(1, max_epochs + 1))
        best_epoch = max(top1, key=top1.get)
        row = rows[name]
        assert float(row['best_top1']) == top1[best_epoch]
        assert float(row['final_top1']) == top1[max_epochs]
        assert int(row['epochs_done']) == int(row['max_epochs']) == max_epochs
        assert row['status'] == 'done'
        assert float(row['images_per_s']) > 0
        assert (f'| `{name}` | - | {top1[best_epoch]:.2f} ({best_epoch}) | '
                f'{top1[max_epochs]:.2f} |') in markdown
    with open(work_root / 'results.png', 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'


def snapshot(work_dir):
    return {
        p: os.stat(p).st_mtime_ns
        for p in glob.glob(f'{work_dir}/**', recursive=True)
    }


def sweep_in_process(work_root, configs, options):
    """Run a sweep as tools/sweep.py does; what it logged."""
    log = work_root / 'sweep.log'
    start = log.stat().st_size
    assert Sweep(configs, str(work_root), options).run() == []
    return log.read_text()[start:]


def test_sweep_runs_skips_finished_and_resumes(tmp_path, flower_data_root,
                                               resnet18_ckpt):
    # Two tiny configs inheriting the repo's; data, image size, batch and
    # checkpoint come as --cfg-options, each config keeps its epochs.
    epochs = {'tiny_r18': 1, 'tiny_r18_bs64': 2}
    parents = {
        'tiny_r18': 'resnet18_flowers.py',
        'tiny_r18_bs64': 'resnet18_flowers_bs64.py'
    }
    configs = []
    for name, max_epochs in epochs.items():
        path = tmp_path / f'{name}.py'
        path.write_text(f'_base_ = {config_path(parents[name])!r}\n'
                        f'train_cfg = dict(max_epochs={max_epochs})\n')
        configs.append(str(path))
    options = [
        o for o in tiny_cfg_options(
            flower_data_root, resnet18_ckpt, batch_size=10)
        if not o.startswith('train_cfg.max_epochs')
    ]
    work_root = tmp_path / 'sweep'
    cmd = [
        SWEEP, *configs, '--work-root', work_root, '--cfg-options', *options
    ]

    out = run_tool(cmd, cwd=tmp_path).stdout
    assert '[1/2] tiny_r18 (not run)' in out
    assert '[2/2] tiny_r18_bs64 (not run)' in out
    assert 'Epoch(train) [2]' in out  # the runs' logs stream through
    assert_table_matches_logs(work_root, epochs)
    for name in epochs:
        state = json.loads((work_root / name / 'sweep_run.json').read_text())
        assert state['status'] == 'done'
        assert state['cfg_options'] == options

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
    run_dir = work_root / 'tiny_r18_bs64'
    for path in glob.glob(f'{run_dir}/*epoch_2.pth'):
        os.remove(path)
    (run_dir / 'last_checkpoint').write_text(str(run_dir / 'epoch_1.pth'))
    state = json.loads((run_dir / 'sweep_run.json').read_text())
    (run_dir / 'sweep_run.json').write_text(
        json.dumps(dict(state, status='running')))
    sessions = set(glob.glob(f'{run_dir}/*/vis_data/scalars.json'))

    out = sweep_in_process(work_root, configs, options)
    assert '[1/2] skipped (done) tiny_r18' in out
    assert '[2/2] tiny_r18_bs64 (running)' in out
    assert 'tiny_r18_bs64: resuming from epoch_1.pth' in out
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


def test_named_experiments_table_report_figures(tmp_path):
    work_root = tmp_path / 'sweep'
    failed = Sweep(['table1', 'table3'], str(work_root)).run(collect_only=True)
    assert failed == []
    rows = list(csv.DictReader(open(work_root / 'results.csv')))
    expected = [(e, c.name, c.report_top1) for e in ('table1', 'table3')
                for c in EXPERIMENTS[e].cells]
    assert [(r['experiment'], r['config'], float(r['report_top1']))
            for r in rows] == expected
    assert {r['status'] for r in rows} == {'not run'}
    assert {r['max_epochs'] for r in rows} == {'30'}
    markdown = (work_root / 'results.md').read_text()
    assert '## table1: Batch size' in markdown
    assert '| batch 64 | `resnet18_flowers_bs64` | 91.4 | - |' in markdown
    assert (work_root / 'results.png').stat().st_size > 0


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

    # The tool exits with the message, having made no work dir.
    monkeypatch.setattr(sys, 'argv',
                        [SWEEP, 'tabel1', '--work-root',
                         str(tmp_path / 'w')])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(SWEEP, run_name='__main__')
    assert str(exit_info.value) == (
        'error: "tabel1" is neither an experiment (table1, table2, table3, '
        'all) nor a config file.')
    assert not osp.exists(tmp_path / 'w')


def _result(experiment, cell, best, final):
    return RunResult(experiment, cell.name, cell.label, cell.report_top1,
                     best, 1, final, 1, 1, None, 'cpu', 'done')


def test_chart_titles_name_the_tables_and_bars_start_at_zero():
    experiments = resolve_experiments(
        ['table3', 'configs/resnet18_flowers_bs64.py'])
    adhoc = experiments[1].cells[0]
    results = [
        _result('table3', c, 93.0, 92.5) for c in experiments[0].cells
    ] + [_result('configs', adhoc, 91.0, None)]
    fig = results_figure(experiments, results)
    table, sweep = fig.axes
    assert table.get_title().replace('\n', ' ') == (
        'Table 3: ResNet-50: stem and stages 1-2 frozen or not')
    assert sweep.get_title() == 'Ad-hoc sweep: resnet18_flowers_bs64'
    assert table.get_ylim()[0] == sweep.get_ylim()[0] == 0
    assert sorted(round(b.get_height(), 1) for b in table.patches) == [
        92.5, 92.5, 93.0, 93.0, 93.2, 94.5
    ]
    # The ad-hoc panel draws what it has: one bar, no report, no final.
    assert [b.get_height() for b in sweep.patches] == [91.0]
    assert [t.get_text() for t in fig.legends[0].get_texts()
            ] == ['report', 'ours, best', 'ours, final']
    alone = results_figure(experiments[1:], results[-1:])
    assert [t.get_text()
            for t in alone.legends[0].get_texts()] == ['ours, best']
