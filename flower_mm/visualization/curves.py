"""Training curves from MMEngine's ``vis_data/scalars.json`` logs.

MMEngine's ``LocalVisBackend`` writes one JSON object per line: training
lines carry ``loss``, ``lr``, ``epoch``, ``iter`` and ``step``; validation
lines carry the metrics (``accuracy/top1``) and ``step``, the epoch (or
iteration) they were computed at. Training lines are written every
``LoggerHook.interval`` iterations, so per-epoch values are their mean.
"""
import glob
import json
import os.path as osp
from collections import OrderedDict, defaultdict
from typing import Dict, List, Optional, Sequence, Tuple

from ..utils.user_errors import FlowerUserError

DEFAULT_KEYS = ('loss', 'lr', 'accuracy/top1')
Curve = Tuple[List[float], List[float]]


class ScalarsNotFoundError(FlowerUserError, FileNotFoundError):
    """A path given for plotting holds no MMEngine scalars log."""


def find_scalar_files(path: str) -> List[str]:
    """The ``scalars.json`` files of a run, oldest first.

    ``path`` is a ``scalars.json`` file, a run's timestamp folder, or a work
    dir (all its timestamp folders, so a resumed run is one curve).
    """
    if osp.isfile(path):
        return [path]
    candidates = [
        osp.join(path, 'vis_data', 'scalars.json'),
        osp.join(path, 'scalars.json'),
    ]
    files = [f for f in candidates if osp.isfile(f)]
    if not files:
        # Timestamp folder names (YYYYmmdd_HHMMSS) sort chronologically.
        files = sorted(
            glob.glob(osp.join(path, '*', 'vis_data', 'scalars.json')))
    if not files:
        raise ScalarsNotFoundError(
            f'No training log found for "{path}": expected a scalars.json '
            'file or a work dir holding <timestamp>/vis_data/scalars.json, '
            'as tools/train.py writes (e.g. work_dirs/resnet50_flowers).')
    return files


def load_scalar_records(file: str) -> List[dict]:
    """The JSON objects of one ``scalars.json``, one per line."""
    records = []
    with open(file) as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise ValueError(
                    f'{file}, line {line_no}: not a JSON object ({err}); is '
                    'it an MMEngine vis_data/scalars.json?') from err
    return records


def run_curves(files: Sequence[str]) -> dict:
    """Per-epoch curves of one run from its ``scalars.json`` files.

    Returns:
        dict: ``x_label`` ('epoch' or 'iteration') and ``curves``, mapping
        each logged key to ``(xs, ys)``. Training keys are averaged over the
        lines of each epoch; validation keys are taken as logged. A later
        file (a resumed run) replaces the epochs it logs again.
    """
    merged: Dict[str, Dict[float, float]] = defaultdict(dict)
    by_epoch = True
    for file in files:
        records = load_scalar_records(file)
        train = [r for r in records if 'iter' in r]
        evals = [r for r in records if 'iter' not in r and 'step' in r]
        if train and not any('epoch' in r for r in train):
            by_epoch = False
        sums: Dict[str, Dict[float, list]] = defaultdict(
            lambda: defaultdict(list))
        for r in train:
            x = r['epoch'] if by_epoch else r['iter']
            for key, value in r.items():
                if key not in ('epoch', 'iter', 'step') and _is_number(value):
                    sums[key][x].append(value)
        for key, per_x in sums.items():
            for x, values in per_x.items():
                merged[key][x] = sum(values) / len(values)
        for r in evals:
            for key, value in r.items():
                if key != 'step' and _is_number(value):
                    merged[key][r['step']] = value
    curves = OrderedDict()
    for key, per_x in merged.items():
        xs = sorted(per_x)
        curves[key] = (xs, [per_x[x] for x in xs])
    return {'x_label': 'epoch' if by_epoch else 'iteration',
            'curves': curves}


def load_runs(paths: Sequence[str],
              labels: Optional[Sequence[str]] = None) -> 'OrderedDict':
    """Curves of several runs, keyed by a readable, unique run name."""
    if labels is not None and len(labels) != len(paths):
        raise ValueError(f'Got {len(labels)} labels for {len(paths)} runs; '
                         'give one label per run or none.')
    runs = OrderedDict()
    for i, path in enumerate(paths):
        name = labels[i] if labels else _run_name(path)
        unique, n = name, 2
        while unique in runs:
            unique, n = f'{name} ({n})', n + 1
        runs[unique] = run_curves(find_scalar_files(path))
    return runs


def plot_training_curves(runs: 'OrderedDict',
                         out_file: str,
                         keys: Sequence[str] = DEFAULT_KEYS) -> str:
    """Plot ``keys`` per epoch, one panel each, every run on each panel."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    available = sorted({k for run in runs.values() for k in run['curves']})
    unknown = [k for k in keys if k not in available]
    if unknown:
        raise KeyError(f'No run logged {unknown}; the logs hold {available}. '
                       'Pick --keys among those.')
    fig = Figure(figsize=(6.4, 3.2 * len(keys)), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(keys), 1, squeeze=False)[:, 0]
    for ax, key in zip(axes, keys):
        positive = True
        for name, run in runs.items():
            if key not in run['curves']:
                continue
            xs, ys = run['curves'][key]
            positive &= all(y > 0 for y in ys)
            ax.plot(xs, ys, marker='o', markersize=3, label=name)
        if key == 'lr' and positive:
            ax.set_yscale('log')  # step schedules span decades
        ax.set_title(key)
        ax.set_xlabel(next(iter(runs.values()))['x_label'])
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(key)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize='small')
    fig.tight_layout()
    fig.savefig(out_file)
    return out_file


def _run_name(path: str) -> str:
    path = osp.normpath(osp.abspath(path))
    if osp.isfile(path):
        # <work_dir>/<timestamp>/vis_data/scalars.json -> work_dir/timestamp
        parts = path.split(osp.sep)
        return '/'.join(parts[-4:-2]) if len(parts) >= 4 else path
    return osp.basename(path)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
