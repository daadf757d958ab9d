"""The report's experiments: which configs each table compares, and the
val top-1 (%) the report gives for each."""
import os.path as osp
from typing import Dict, List, NamedTuple, Optional, Sequence

from ..utils.user_errors import FlowerUserError

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


class Cell(NamedTuple):
    """One run of an experiment: a config and the report's figure for it."""
    config: str  # path relative to the repo root, or absolute
    label: str  # what the cell varies, as the report's table names it
    report_top1: Optional[float] = None

    @property
    def name(self) -> str:
        """The config's name, which is also its work dir's name."""
        return osp.splitext(osp.basename(self.config))[0]

    @property
    def config_path(self) -> str:
        return self.config if osp.isabs(self.config) else osp.join(
            REPO_ROOT, self.config)


class Comparison(NamedTuple):
    """One difference a table draws: ``a`` minus ``b``."""
    a: Cell
    b: Cell

    @property
    def label(self) -> str:
        return f'{self.a.label} - {self.b.label}'

    @property
    def report_difference(self) -> Optional[float]:
        if self.a.report_top1 is None or self.b.report_top1 is None:
            return None
        return round(self.a.report_top1 - self.b.report_top1, 6)


class Experiment(NamedTuple):
    name: str
    title: str
    cells: List[Cell]

    @property
    def heading(self) -> str:
        """'Table 1: Batch size...', or the title of an ad-hoc sweep."""
        if self.name.startswith('table'):
            return f'Table {self.name[5:]}: {self.title}'
        return self.title

    @property
    def comparisons(self) -> List[Comparison]:
        """The differences the report draws: its ranking of the cells, one
        step at a time (batch 128 - batch 64, batch 64 - batch 32). Without
        report figures (an ad-hoc sweep): each config minus the first."""
        if all(c.report_top1 is not None for c in self.cells):
            ranked = sorted(self.cells, key=lambda c: -c.report_top1)
            return [Comparison(a, b) for a, b in zip(ranked, ranked[1:])]
        return [Comparison(c, self.cells[0]) for c in self.cells[1:]]


# Tables 2 and 3 share runs with table 1 and 2 (resnet18_flowers.py and
# resnet50_flowers.py): a sweep trains each config once. The report's
# ResNet-18 figure in table 2 (92.6) is its batch-128 figure of table 1, not
# its batch-32 one (90.2); with hyper-parameters identical to ResNet-50's
# (batch 32) table 2 runs resnet18_flowers.py (docs/experiments.md).
EXPERIMENTS: Dict[str, Experiment] = {
    e.name: e
    for e in [
        Experiment('table1', 'Batch size, ResNet-18 (lr scaled linearly)', [
            Cell('configs/resnet18_flowers.py', 'batch 32', 90.2),
            Cell('configs/resnet18_flowers_bs64.py', 'batch 64', 91.4),
            Cell('configs/resnet18_flowers_bs128.py', 'batch 128', 92.6),
        ]),
        Experiment('table2', 'Backbone, identical hyper-parameters', [
            Cell('configs/resnet18_flowers.py', 'ResNet-18', 92.6),
            Cell('configs/resnet50_flowers.py', 'ResNet-50', 94.5),
            Cell('configs/densenet121_flowers.py', 'DenseNet-121', 94.2),
        ]),
        Experiment('table3', 'ResNet-50: stem and stages 1-2 frozen or not', [
            Cell('configs/resnet50_flowers.py', 'frozen', 94.5),
            Cell('configs/resnet50_flowers_unfrozen.py', 'nothing frozen',
                 93.2),
        ]),
    ]
}
ALL = 'all'


class SweepError(FlowerUserError, ValueError):
    """A sweep cannot start or go on as asked."""


def resolve_experiments(targets: Sequence[str]) -> List[Experiment]:
    """Experiments named by ``targets``: experiment names, ``all``, or
    config files (gathered into one experiment, ``configs``, with no report
    figures)."""
    if not targets:
        raise SweepError(
            'Name an experiment '
            f'({", ".join([*EXPERIMENTS, ALL])}) or config files.')
    experiments, configs = [], []
    for target in targets:
        if target == ALL:
            experiments += EXPERIMENTS.values()
        elif target in EXPERIMENTS:
            experiments.append(EXPERIMENTS[target])
        elif target.endswith('.py') or osp.exists(target):
            if not osp.isfile(target):
                raise SweepError(f'Config file "{target}" does not exist.')
            configs.append(
                Cell(
                    osp.abspath(target),
                    osp.splitext(osp.basename(target))[0]))
        else:
            raise SweepError(
                f'"{target}" is neither an experiment '
                f'({", ".join([*EXPERIMENTS, ALL])}) nor a config file.')
    if configs:
        experiments.append(
            Experiment(
                'configs',
                'Ad-hoc sweep: ' + ', '.join(c.name for c in configs),
                configs))
    # Keep the first of repeated experiments (e.g. `all table1`).
    unique = {}
    for experiment in experiments:
        unique.setdefault(experiment.name, experiment)
    return list(unique.values())


def unique_cells(experiments: Sequence[Experiment]) -> List[Cell]:
    """Each config once, in first-seen order; two different config files
    with the same name would share a work dir and are refused."""
    cells: Dict[str, Cell] = {}
    for experiment in experiments:
        for cell in experiment.cells:
            seen = cells.setdefault(cell.name, cell)
            if osp.realpath(seen.config_path) != osp.realpath(
                    cell.config_path):
                raise SweepError(
                    f'Configs "{seen.config_path}" and "{cell.config_path}" '
                    f'share the name {cell.name} and so the work dir: '
                    'rename one, or sweep them into different --work-root.')
    return list(cells.values())
