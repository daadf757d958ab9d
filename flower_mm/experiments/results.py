"""Read a run's val top-1 from its work dir; write the sweep's tables and
bar chart beside the report's figures."""
import csv
import statistics
from typing import Dict, List, NamedTuple, Optional, Sequence

from ..visualization.curves import (ScalarsNotFoundError, find_scalar_files,
                                    load_scalar_records)
from .registry import Cell, Experiment

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
    experiment: str
    config: str
    label: str
    report_top1: Optional[float]
    best_top1: Optional[float]
    best_epoch: Optional[int]
    final_top1: Optional[float]
    epochs_done: int
    max_epochs: Optional[int]
    images_per_s: Optional[float]
    device: str
    status: str


def collect_result(experiment: Experiment,
                   cell: Cell,
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
        best_top1=log.val_top1.get(best_epoch),
        best_epoch=best_epoch,
        final_top1=log.val_top1.get(final_epoch),
        epochs_done=final_epoch or 0,
        max_epochs=max_epochs,
        images_per_s=images_per_s,
        device=device,
        status=status)


CSV_FIELDS = list(RunResult._fields)


def _fmt(value, digits=2) -> str:
    if value is None:
        return '-'
    return f'{value:.{digits}f}' if isinstance(value, float) else str(value)


def write_csv(results: Sequence[RunResult], path: str) -> None:
    with open(path, 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(CSV_FIELDS)
        for result in results:
            writer.writerow(['' if v is None else v for v in result])


def write_markdown(experiments: Sequence[Experiment],
                   results: Sequence[RunResult], path: str) -> None:
    lines = [
        '# Sweep results', '',
        'Val top-1 (%) of each run, read from its work dir '
        '(`<timestamp>/vis_data/scalars.json`), beside the report\'s figure. '
        'Train img/s is the median over the logged iterations.', ''
    ]
    for experiment in experiments:
        lines += [
            f'## {experiment.name}: {experiment.title}', '',
            '| Cell | Config | Report | Best (epoch) | Final | '
            'Best - report | Epochs | Train img/s | Device | Status |',
            '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | '
            '--- |'
        ]
        for r in results:
            if r.experiment != experiment.name:
                continue
            best = '-' if r.best_top1 is None else \
                f'{r.best_top1:.2f} ({r.best_epoch})'
            delta = '-' if None in (r.best_top1, r.report_top1) else \
                f'{r.best_top1 - r.report_top1:+.2f}'
            epochs = f'{r.epochs_done}/{_fmt(r.max_epochs)}'
            lines.append(
                f'| {r.label} | `{r.config}` | {_fmt(r.report_top1, 1)} | '
                f'{best} | {_fmt(r.final_top1)} | {delta} | {epochs} | '
                f'{_fmt(r.images_per_s, 1)} | {r.device or "-"} | '
                f'{r.status} |')
        lines.append('')
    with open(path, 'w') as f:
        f.write('\n'.join(lines))


def results_figure(experiments: Sequence[Experiment],
                   results: Sequence[RunResult]):
    """One panel per experiment, titled with its table: grouped bars of
    the report's, our best and our final val top-1, from zero (each bar
    is labelled with its value, which tells a few points apart)."""
    import matplotlib
    matplotlib.use('Agg')
    import textwrap

    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(
        1,
        len(experiments),
        figsize=(4.5 * len(experiments), 4.4),
        squeeze=False)
    series = [('report', 'report_top1', '#9e9e9e'),
              ('ours, best', 'best_top1', '#1f77b4'),
              ('ours, final', 'final_top1', '#aec7e8')]
    width = 0.27
    legend = {}
    for ax, experiment in zip(axes[0], experiments):
        rows = [r for r in results if r.experiment == experiment.name]
        x = np.arange(len(rows))
        # Only series with a value (an ad-hoc sweep has no report figure).
        present = [
            s for s in series if any(getattr(r, s[1]) is not None
                                     for r in rows)
        ]
        for i, (name, field, colour) in enumerate(present):
            drawn = [(j, getattr(r, field)) for j, r in enumerate(rows)
                     if getattr(r, field) is not None]
            offset = (i - (len(present) - 1) / 2) * width
            bars = ax.bar([x[j] + offset for j, _ in drawn],
                          [h for _, h in drawn],
                          width,
                          label=name,
                          color=colour)
            legend.setdefault(name, bars)
            for bar, (_, h) in zip(bars, drawn):
                ax.annotate(
                    f'{h:.1f}', (bar.get_x() + bar.get_width() / 2, h),
                    ha='center',
                    va='bottom',
                    fontsize=7)
        ax.set_xticks(x, [r.label for r in rows], rotation=15)
        ax.set_title(
            '\n'.join(textwrap.wrap(experiment.heading, 48)), fontsize=9)
        ax.set_ylabel('val top-1 (%)')
        ax.set_ylim(0, 105)  # room for the value labels above 100 %
    # One legend for all panels, below them, of the bars drawn.
    order = [name for name, _, _ in series if name in legend]
    fig.legend([legend[n] for n in order],
               order,
               loc='lower center',
               ncol=3,
               fontsize=8)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig


def plot_results(experiments: Sequence[Experiment],
                 results: Sequence[RunResult], path: str) -> None:
    """:func:`results_figure`, as a PNG."""
    import matplotlib.pyplot as plt
    fig = results_figure(experiments, results)
    fig.savefig(path, dpi=120)
    plt.close(fig)
