"""Read each run's val top-1 from its work dir; write the sweep's tables
and chart: per cell the mean and spread over seeds beside the report's
figure, per table the report's differences with their 95 % interval."""
import csv
import statistics
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from ..engine.hooks.val_predictions_hook import read_val_predictions
from ..visualization.curves import (ScalarsNotFoundError, find_scalar_files,
                                    load_scalar_records)
from .registry import Cell, Comparison, Experiment
from .statistics import (LEVEL, Interval, Spread, paired_bootstrap_interval,
                         spread, verdict, welch_interval)

TOP1 = 'accuracy/top1'


class RunLog(NamedTuple):
    """What a work dir's ``<timestamp>/vis_data/scalars.json`` files hold."""
    val_top1: Dict[int, float]  # epoch -> val top-1 (%)
    iter_times: List[float]  # seconds per train iteration, one per log line


def read_run_log(work_dir: str) -> RunLog:
    """Merge the scalars of every session of a run, oldest first.

    Each start or ``--resume`` of ``tools/train.py`` logs into a new
    ``<timestamp>`` folder; an epoch validated again after a resume keeps
    its latest value.
    """
    val_top1: Dict[int, float] = {}
    iter_times: List[float] = []
    try:
        files = find_scalar_files(work_dir)
    except ScalarsNotFoundError:  # not trained yet
        files = []
    for path in files:
        session_times = []
        for record in load_scalar_records(path):
            if TOP1 in record and 'iter' not in record:
                # Val lines: `step` is the epoch validated.
                val_top1[int(record['step'])] = float(record[TOP1])
            elif 'loss' in record and 'time' in record:
                session_times.append(float(record['time']))
        # The first log window of a session holds the warm-up (workers
        # starting, cuDNN autotuning): leave it out when there are others.
        iter_times += session_times[1:] or session_times
    return RunLog(val_top1, iter_times)


class RunResult(NamedTuple):
    """One run (a config and a seed), as its work dir and state say."""
    experiment: str
    config: str
    label: str
    report_top1: Optional[float]
    seed: int
    best_top1: Optional[float]
    best_epoch: Optional[int]
    final_top1: Optional[float]
    epochs_done: int
    max_epochs: Optional[int]
    images_per_s: Optional[float]
    device: str
    status: str
    work_dir: str = ''
    val_epochs: Tuple[int, ...] = ()


def collect_result(experiment: Experiment,
                   cell: Cell,
                   seed: int,
                   work_dir: str,
                   status: str,
                   batch_size: Optional[int],
                   max_epochs: Optional[int],
                   device: str = '') -> RunResult:
    """Best and final val top-1 and train throughput of one run."""
    log = read_run_log(work_dir)
    best_epoch = max(
        log.val_top1, key=lambda e: (log.val_top1[e], -e), default=None)
    final_epoch = max(log.val_top1, default=None)
    images_per_s = None
    if log.iter_times and batch_size:
        images_per_s = batch_size / statistics.median(log.iter_times)
    return RunResult(
        experiment=experiment.name,
        config=cell.name,
        label=cell.label,
        report_top1=cell.report_top1,
        seed=seed,
        best_top1=log.val_top1.get(best_epoch),
        best_epoch=best_epoch,
        final_top1=log.val_top1.get(final_epoch),
        epochs_done=final_epoch or 0,
        max_epochs=max_epochs,
        images_per_s=images_per_s,
        device=device,
        status=status,
        work_dir=work_dir,
        val_epochs=tuple(sorted(log.val_top1)))


class CellResult(NamedTuple):
    """A cell of a table: its runs, one per seed."""
    experiment: str
    config: str
    label: str
    report_top1: Optional[float]
    runs: List[RunResult]  # by seed

    @property
    def logged(self) -> List[RunResult]:
        """The runs that validated at least once."""
        return [r for r in self.runs if r.best_top1 is not None]

    @property
    def best(self) -> Spread:
        return spread([r.best_top1 for r in self.logged])

    @property
    def final(self) -> Spread:
        return spread([r.final_top1 for r in self.logged])

    @property
    def done(self) -> List[RunResult]:
        return [r for r in self.logged if r.status == 'done']

    @property
    def status(self) -> str:
        """The runs' status when they share it, else each one's by seed."""
        statuses = {r.status for r in self.runs}
        if len(statuses) == 1:
            return statuses.pop()
        return ', '.join(f'seed {r.seed}: {r.status}' for r in self.runs)


def summarize_cells(experiments: Sequence[Experiment],
                    runs: Sequence[RunResult]) -> List[CellResult]:
    """The runs grouped per (experiment, cell), in table order."""
    cells = []
    for experiment in experiments:
        for cell in experiment.cells:
            cell_runs = sorted(
                (r for r in runs
                 if r.experiment == experiment.name and r.config == cell.name),
                key=lambda r: r.seed)
            cells.append(
                CellResult(experiment.name, cell.name, cell.label,
                           cell.report_top1, cell_runs))
    return cells


class DifferenceResult(NamedTuple):
    """One of a table's differences: ours, its interval, the verdict."""
    experiment: str
    label: str
    config_a: str
    config_b: str
    report_difference: Optional[float]
    interval: Optional[Interval]
    difference: Optional[float]  # also without an interval
    verdict: str
    note: str  # why there is no interval


def val_correctness(run: RunResult) -> Tuple[Optional[tuple], object]:
    """(photos, [epochs, photos] 0/1 array) of a run's validations, or
    (None, why not) when its val predictions do not cover every epoch it
    logged."""
    predictions = read_val_predictions(run.work_dir)
    missing = [e for e in run.val_epochs if e not in predictions]
    if missing or not run.val_epochs:
        return None, (f'{run.config} seed {run.seed} has no val predictions '
                      f'for epochs {missing} (trained without '
                      'ValPredictionsHook)')
    photos = tuple(predictions[run.val_epochs[0]]['img_path'])
    rows = []
    for epoch in run.val_epochs:
        record = predictions[epoch]
        if tuple(record['img_path']) != photos:
            return None, (f'{run.config} seed {run.seed} validated other '
                          f'photos in epoch {epoch}')
        rows.append(
            np.equal(record['gt_label'], record['pred_label']).astype(int))
    return photos, np.stack(rows)


def compare(experiment: Experiment, comparison: Comparison,
            cells: Dict[str, CellResult]) -> DifferenceResult:
    """The difference of the two cells' best val top-1 over their finished
    runs: Welch's interval with 2+ seeds on both sides, the paired bootstrap
    over val photos with one run each."""
    a_runs, b_runs = (cells[c.name].done for c in comparison)
    interval, note = None, ''
    difference = None
    if a_runs and b_runs:
        difference = (spread([r.best_top1 for r in a_runs]).mean -
                      spread([r.best_top1 for r in b_runs]).mean)
    if not a_runs or not b_runs:
        note = 'runs not done yet'
    elif len(a_runs) >= 2 and len(b_runs) >= 2:
        interval = welch_interval([r.best_top1 for r in a_runs],
                                  [r.best_top1 for r in b_runs])
        if interval is None:
            note = 'every seed scored the same: no spread to measure'
    elif len(a_runs) == 1 and len(b_runs) == 1:
        photos_a, correct_a = val_correctness(a_runs[0])
        photos_b, correct_b = val_correctness(b_runs[0])
        if photos_a is None or photos_b is None:
            note = correct_a if photos_a is None else correct_b
        elif photos_a != photos_b:
            note = 'the two runs validated different photos'
        else:
            interval = paired_bootstrap_interval(correct_a, correct_b)
    else:
        note = (f'{len(a_runs)} and {len(b_runs)} runs done: needs 2+ '
                'seeds on both sides, or one run each')
    report = comparison.report_difference
    return DifferenceResult(experiment.name, comparison.label,
                            comparison.a.name, comparison.b.name, report,
                            interval,
                            interval.difference if interval else difference,
                            verdict(interval, report), note)


def compare_cells(experiments: Sequence[Experiment],
                  cells: Sequence[CellResult]) -> List[DifferenceResult]:
    differences = []
    for experiment in experiments:
        by_name = {c.config: c for c in cells
                   if c.experiment == experiment.name}
        differences += [
            compare(experiment, comparison, by_name)
            for comparison in experiment.comparisons
        ]
    return differences


def _fmt(value, digits=2, sign=False) -> str:
    if value is None:
        return '-'
    if isinstance(value, float):
        return f'{value:+.{digits}f}' if sign else f'{value:.{digits}f}'
    return str(value)


def _mean_std(s: Spread) -> str:
    if s.mean is None:
        return '-'
    return _fmt(s.mean) + ('' if s.std is None else f' ± {s.std:.2f}')


def _interval(d: DifferenceResult) -> str:
    if d.interval is None:
        return '-'
    return f'[{d.interval.low:+.2f}, {d.interval.high:+.2f}]'


def _epochs(cell: CellResult) -> str:
    done = sorted({r.epochs_done for r in cell.runs})
    span = str(done[0]) if len(done) == 1 else f'{done[0]}-{done[-1]}'
    max_epochs = cell.runs[0].max_epochs if cell.runs else None
    return f'{span}/{_fmt(max_epochs)}'


def _mean_or_none(values) -> Optional[float]:
    values = [v for v in values if v is not None]
    return statistics.fmean(values) if values else None


CSV_FIELDS = [
    'experiment', 'config', 'label', 'report_top1', 'n', 'seeds',
    'best_top1', 'best_top1_std', 'best_top1_per_seed', 'best_epochs',
    'final_top1', 'final_top1_std', 'final_top1_per_seed', 'epochs_done',
    'max_epochs', 'images_per_s', 'device', 'status'
]
DIFFERENCE_FIELDS = [
    'experiment', 'difference', 'config_a', 'config_b', 'report',
    'ours', 'low', 'high', 'method', 'verdict', 'note'
]


def _joined(values) -> str:
    return ';'.join('' if v is None else str(v) for v in values)


def write_csv(cells: Sequence[CellResult], path: str) -> None:
    """One row per cell; ``best_top1``/``final_top1`` are the means over
    seeds, ``*_per_seed`` the values by seed (``seeds``), ``;``-joined."""
    with open(path, 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(CSV_FIELDS)
        for c in cells:
            runs = c.logged
            best, final = c.best, c.final
            row = [
                c.experiment, c.config, c.label, c.report_top1, best.n,
                _joined(r.seed for r in runs), best.mean, best.std,
                _joined(r.best_top1 for r in runs),
                _joined(r.best_epoch for r in runs), final.mean, final.std,
                _joined(r.final_top1 for r in runs),
                min((r.epochs_done for r in c.runs), default=0),
                c.runs[0].max_epochs if c.runs else None,
                _mean_or_none(r.images_per_s for r in c.runs),
                '; '.join(sorted({r.device for r in c.runs if r.device})),
                c.status
            ]
            writer.writerow(['' if v is None else v for v in row])


def write_differences_csv(differences: Sequence[DifferenceResult],
                          path: str) -> None:
    with open(path, 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(DIFFERENCE_FIELDS)
        for d in differences:
            i = d.interval
            row = [
                d.experiment, d.label, d.config_a, d.config_b,
                d.report_difference, d.difference, i and i.low, i and i.high,
                i and i.method, d.verdict, d.note
            ]
            writer.writerow(['' if v is None else v for v in row])


def write_markdown(experiments: Sequence[Experiment],
                   cells: Sequence[CellResult],
                   differences: Sequence[DifferenceResult],
                   path: str) -> None:
    level = f'{LEVEL:.0%}'.replace('%', ' %')
    lines = [
        '# Sweep results', '',
        'Val top-1 (%) of each cell, mean ± sample standard deviation over '
        'its seeds (n runs), read from the runs\' work dirs '
        '(`<timestamp>/vis_data/scalars.json`), beside the report\'s figure. '
        'Train img/s is the median over the logged iterations. Each table\'s '
        f'differences are of the best val top-1, with a {level} interval '
        '(Welch t over seeds, or a paired bootstrap over val photos for one '
        'run per cell; docs/experiments.md#statistics).', ''
    ]
    for experiment in experiments:
        lines += [
            f'## {experiment.name}: {experiment.title}', '',
            '| Cell | Config | Report | n | Best, mean ± std | '
            'Best per seed (epoch) | Final, mean ± std | Best - report | '
            'Epochs | Train img/s | Device | Status |',
            '| --- | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | '
            '---: | --- | --- |'
        ]
        for c in cells:
            if c.experiment != experiment.name:
                continue
            best = c.best
            per_seed = ', '.join(f'{r.best_top1:.2f} ({r.best_epoch})'
                                 for r in c.logged) or '-'
            delta = '-' if None in (best.mean, c.report_top1) else \
                f'{best.mean - c.report_top1:+.2f}'
            devices = '; '.join(sorted({r.device for r in c.runs
                                        if r.device})) or '-'
            lines.append(
                f'| {c.label} | `{c.config}` | {_fmt(c.report_top1, 1)} | '
                f'{best.n} | {_mean_std(best)} | {per_seed} | '
                f'{_mean_std(c.final)} | {delta} | {_epochs(c)} | '
                f'{_fmt(_mean_or_none(r.images_per_s for r in c.runs), 1)} | '
                f'{devices} | {c.status} |')
        rows = [d for d in differences if d.experiment == experiment.name]
        if rows:
            lines += [
                '', f'| Difference | Report | Ours | {level} interval | '
                'From | Verdict |', '| --- | ---: | ---: | --- | --- | --- |'
            ]
            for d in rows:
                source = d.interval.method if d.interval else d.note
                lines.append(
                    f'| {d.label} | {_fmt(d.report_difference, 1, True)} | '
                    f'{_fmt(d.difference, 2, True)} | {_interval(d)} | '
                    f'{source} | {d.verdict} |')
        lines.append('')
    with open(path, 'w') as f:
        f.write('\n'.join(lines))


def results_figure(experiments: Sequence[Experiment],
                   cells: Sequence[CellResult],
                   differences: Sequence[DifferenceResult]):
    """Per table (a column), above: each cell's best val top-1, every seed
    a dot, the mean with a ±1 std error bar, the report's figure a grey
    diamond; below: each difference with its 95 % interval, the report's
    difference and the verdict, around a line at zero."""
    import matplotlib
    matplotlib.use('Agg')
    import textwrap

    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        2,
        len(experiments),
        figsize=(4.8 * len(experiments), 7.6),
        squeeze=False,
        gridspec_kw=dict(height_ratios=(3, 2)))
    ours, report = '#1f77b4', '#7f7f7f'
    for column, experiment in enumerate(experiments):
        top, bottom = axes[0][column], axes[1][column]
        rows = [c for c in cells if c.experiment == experiment.name]
        for x, c in enumerate(rows):
            values = [r.best_top1 for r in c.logged]
            top.scatter([x + 0.12] * len(values), values, s=14, color=ours,
                        alpha=0.55, zorder=3, label='ours, each seed')
            best = c.best
            if best.mean is not None:
                top.errorbar([x], [best.mean],
                             yerr=None if best.std is None else [best.std],
                             fmt='o', color=ours, markersize=7, capsize=5,
                             zorder=4, label='ours, mean ± std')
                text = _mean_std(best) + f'\nn={best.n}'
                top.annotate(text, (x + 0.12, best.mean), xytext=(6, 0),
                             textcoords='offset points', ha='left',
                             va='center', fontsize=7)
            if c.report_top1 is not None:
                top.scatter([x - 0.15], [c.report_top1], marker='D', s=30,
                            color=report, zorder=3, label='report')
        top.set_xticks(range(len(rows)), [c.label for c in rows],
                       rotation=15)
        top.set_xlim(-0.5, len(rows) - 0.2)
        top.set_title(
            '\n'.join(textwrap.wrap(experiment.heading, 48)), fontsize=9)
        top.set_ylabel('best val top-1 (%)')
        top.margins(y=0.25)
        top.grid(axis='y', alpha=0.3)

        rows = [d for d in differences if d.experiment == experiment.name]
        bottom.axhline(0, color='black', linewidth=0.8)
        for x, d in enumerate(rows):
            if d.interval is not None:
                i = d.interval
                bottom.errorbar([x], [i.difference],
                                yerr=[[i.difference - i.low],
                                      [i.high - i.difference]],
                                fmt='s', color=ours, capsize=5, zorder=4,
                                label=f'ours, {LEVEL:.0%} interval')
            elif d.difference is not None:
                bottom.scatter([x], [d.difference], marker='s', color=ours,
                               zorder=4)
            if d.report_difference is not None:
                bottom.scatter([x + 0.15], [d.report_difference], marker='D',
                               s=30, color=report, zorder=3, label='report')
            bottom.annotate(d.verdict, (x, 1), xycoords=('data',
                                                         'axes fraction'),
                            xytext=(0, -4), textcoords='offset points',
                            ha='center', va='top', fontsize=8,
                            fontweight='bold')
        bottom.set_xticks(range(len(rows)), [d.label for d in rows],
                          rotation=15, fontsize=8)
        bottom.set_xlim(-0.6, max(len(rows), 1) - 0.4)
        bottom.set_ylabel('difference (points)')
        bottom.margins(y=0.3)
        bottom.grid(axis='y', alpha=0.3)
        if not rows:
            bottom.text(0.5, 0.5, 'one cell: nothing to compare',
                        transform=bottom.transAxes, ha='center', fontsize=8)
    # One legend for the figure, of what was drawn.
    handles = {}
    for ax in fig.axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    order = [n for n in ('report', 'ours, each seed', 'ours, mean ± std',
                         f'ours, {LEVEL:.0%} interval') if n in handles]
    fig.legend([handles[n] for n in order], order, loc='lower center',
               ncol=len(order), fontsize=8)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig


def plot_results(experiments: Sequence[Experiment],
                 cells: Sequence[CellResult],
                 differences: Sequence[DifferenceResult], path: str) -> None:
    """:func:`results_figure`, as a PNG."""
    import matplotlib.pyplot as plt
    fig = results_figure(experiments, cells, differences)
    fig.savefig(path, dpi=120)
    plt.close(fig)
