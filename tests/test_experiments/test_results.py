"""The sweep's tables and chart from constructed runs: which interval each
difference gets, from which runs, and what the chart draws."""
import pytest
from matplotlib.collections import LineCollection, PathCollection

from flower_mm.experiments import resolve_experiments
from flower_mm.experiments.results import (CellResult, RunResult,
                                           compare_cells, results_figure,
                                           summarize_cells, write_markdown)


def error_bars(ax):
    """[low, high] of each error bar drawn in ax."""
    return sorted(
        sorted(round(float(y), 6) for _, y in segment)
        for c in ax.collections if isinstance(c, LineCollection)
        for segment in c.get_segments())


def _runs(experiment, cell, bests, status='done', first_seed=0,
          work_dir=''):
    """Runs of ``cell`` (seeds first_seed, ...) that scored ``bests``, and
    one point less at their last epoch."""
    return [
        RunResult(experiment, cell.name, cell.label, cell.report_top1, seed,
                  best, 1, best - 1, 2, 2, None, 'cpu', status, work_dir,
                  (1, 2))
        for seed, best in enumerate(bests, first_seed)
    ]


def _cell(experiment, cell, bests):
    """A cell whose runs (seeds 0, 1, ...) scored ``bests``."""
    return CellResult(experiment, cell.name, cell.label, cell.report_top1,
                      _runs(experiment, cell, bests))


def test_chart_draws_seeds_error_bars_and_intervals(tmp_path):
    experiments = resolve_experiments(
        ['table3', 'configs/resnet18_flowers_bs64.py'])
    frozen, unfrozen = experiments[0].cells
    adhoc = experiments[1].cells[0]
    cells = [
        _cell('table3', frozen, [94.0, 95.0, 96.0]),
        _cell('table3', unfrozen, [92.0, 92.5, 93.0]),
        _cell('configs', adhoc, [91.0]),
    ]
    differences = compare_cells(experiments, cells)
    fig = results_figure(experiments, cells, differences)
    table, sweep, table_differences, sweep_differences = fig.axes
    assert table.get_title().replace('\n', ' ') == (
        'Table 3: ResNet-50: stem and stages 1-2 frozen or not')
    assert sweep.get_title() == 'Ad-hoc sweep: resnet18_flowers_bs64'
    # Each seed a dot, the report a diamond, the mean with a ±1 std bar.
    points = sorted(float(y) for c in table.collections
                    if isinstance(c, PathCollection)
                    for _, y in c.get_offsets())
    assert points == [92.0, 92.5, 93.0, 93.2, 94.0, 94.5, 95.0, 96.0]
    assert error_bars(table) == [[92.0, 93.0], [94.0, 96.0]]
    texts = [t.get_text() for t in table.texts]
    assert texts == ['95.00 ± 1.00\nn=3', '92.50 ± 0.50\nn=3']
    # Below: frozen - unfrozen, Welch's interval around +2.5, the report's
    # +1.3 beside it, and the verdict.
    difference, = differences
    assert difference.interval.difference == pytest.approx(2.5)
    assert error_bars(table_differences) == [
        [round(difference.interval.low, 6),
         round(difference.interval.high, 6)]]
    assert [t.get_text() for t in table_differences.texts] == ['holds']
    assert [t.get_text() for t in sweep_differences.texts
            ] == ['one cell: nothing to compare']
    assert [t.get_text() for t in fig.legends[0].get_texts()] == [
        'report', 'ours, each seed', 'ours, mean ± std', 'ours, 95% interval'
    ]
    fig.savefig(tmp_path / 'chart.png')


def test_differences_come_from_finished_runs_by_seed_or_by_photo(tmp_path):
    experiments = resolve_experiments(['table3'])
    frozen, unfrozen = experiments[0].cells
    # Seeds as replicates: 2 finished frozen runs (the third still
    # running is left out) against 3 unfrozen ones.
    runs = _runs('table3', frozen, [94.0, 95.0]) + _runs(
        'table3', frozen, [99.0], status='running', first_seed=2) + _runs(
            'table3', unfrozen, [92.0, 92.5, 93.0])
    cells = summarize_cells(experiments, runs)
    assert [c.best.n for c in cells] == [3, 3]  # the table shows all logged
    assert cells[0].status == 'seed 0: done, seed 1: done, seed 2: running'
    difference, = compare_cells(experiments, cells)
    assert difference.label == 'frozen - nothing frozen'
    assert difference.report_difference == pytest.approx(1.3)
    assert difference.interval.method == 'Welch t, 2 + 3 seeds'
    assert difference.difference == pytest.approx(94.5 - 92.5)
    write_markdown(experiments, cells, [difference], tmp_path / 'results.md')
    i = difference.interval
    assert (f'| frozen - nothing frozen | +1.3 | +2.00 | [{i.low:+.2f}, '
            f'{i.high:+.2f}] | Welch t, 2 + 3 seeds | {difference.verdict} |'
            ) in (tmp_path / 'results.md').read_text()

    # 2 finished runs against 1: neither method applies.
    runs = _runs('table3', frozen, [94.0, 95.0]) + _runs(
        'table3', unfrozen, [92.0])
    difference, = compare_cells(experiments,
                                summarize_cells(experiments, runs))
    assert (difference.interval, difference.verdict) == (None, 'n/a')
    assert difference.difference == pytest.approx(2.5)
    assert difference.note == ('2 and 1 runs done: needs 2+ seeds on both '
                               'sides, or one run each')

    # One run each: the paired bootstrap needs their val predictions.
    runs = _runs('table3', frozen, [94.0], work_dir=str(tmp_path)) + _runs(
        'table3', unfrozen, [92.0], work_dir=str(tmp_path))
    difference, = compare_cells(experiments,
                                summarize_cells(experiments, runs))
    assert difference.verdict == 'n/a'
    assert difference.note == (
        'resnet50_flowers seed 0 has no val predictions for epochs [1, 2] '
        '(trained without ValPredictionsHook)')
