"""Training curves from MMEngine scalars logs."""
import json

import cv2
import pytest
from conftest import REPO_ROOT, run_tool

from flower_mm.visualization import (ScalarsNotFoundError, load_runs,
                                     plot_training_curves, run_curves)


def write_scalars(work_dir, timestamp, records):
    vis = work_dir / timestamp / 'vis_data'
    vis.mkdir(parents=True)
    with open(vis / 'scalars.json', 'w') as f:
        for r in records:
            f.write(json.dumps(r) + '\n')
    return vis / 'scalars.json'


def train(epoch, it, loss, lr):
    return {'lr': lr, 'loss': loss, 'time': 0.2, 'epoch': epoch, 'iter': it,
            'step': it}


def val(epoch, top1):
    return {'accuracy/top1': top1, 'time': 0.1, 'step': epoch}


@pytest.fixture
def resumed_run(tmp_path):
    """Epochs 1-2, then a resumed run logging epoch 3."""
    work_dir = tmp_path / 'resnet50_flowers'
    write_scalars(work_dir, '20250101_000000', [
        train(1, 10, 2.0, 0.01), train(1, 20, 1.0, 0.01), val(1, 40.0),
        train(2, 30, 0.8, 0.01), train(2, 40, 0.6, 0.01),
        train(2, 50, 0.4, 0.01), val(2, 70.0)
    ])
    write_scalars(work_dir, '20250102_000000', [
        train(3, 60, 0.3, 0.001), val(3, 80.0)
    ])
    return work_dir


def test_per_epoch_values(resumed_run):
    runs = load_runs([str(resumed_run)])
    run = runs['resnet50_flowers']
    assert run['x_label'] == 'epoch'
    xs, loss = run['curves']['loss']
    assert xs == [1, 2, 3]
    # mean of the lines logged in each epoch
    assert loss == pytest.approx([1.5, 0.6, 0.3])
    assert run['curves']['lr'][1] == pytest.approx([0.01, 0.01, 0.001])
    assert run['curves']['accuracy/top1'] == ([1, 2, 3], [40.0, 70.0, 80.0])


def test_iteration_based_logs_plot_per_iteration(tmp_path):
    scalars = write_scalars(tmp_path / 'iters', '20250101_000000', [
        {'loss': 1.0, 'lr': 0.1, 'iter': 100, 'step': 100},
        {'loss': 0.5, 'lr': 0.1, 'iter': 200, 'step': 200},
        {'accuracy/top1': 55.0, 'step': 200},
    ])
    run = run_curves([str(scalars)])
    assert run['x_label'] == 'iteration'
    assert run['curves']['loss'] == ([100, 200], [1.0, 0.5])
    assert run['curves']['accuracy/top1'] == ([200], [55.0])


def test_missing_scalars_is_a_clear_error(tmp_path):
    with pytest.raises(ScalarsNotFoundError, match='No training log found'):
        load_runs([str(tmp_path)])


def test_tool_plots_two_runs_on_one_png(resumed_run, tmp_path):
    other = tmp_path / 'resnet50_flowers_unfrozen'
    write_scalars(other, '20250103_000000',
                  [train(1, 10, 1.2, 0.01), val(1, 60.0)])
    out = tmp_path / 'compare.png'
    proc = run_tool([
        REPO_ROOT / 'tools' / 'plot_curves.py', resumed_run, other, '--out',
        out
    ], cwd=tmp_path)
    assert 'resnet50_flowers: 3 epochs' in proc.stdout
    assert 'resnet50_flowers_unfrozen: 1 epochs' in proc.stdout
    png = cv2.imread(str(out))
    assert png is not None
    # three panels (loss, lr, accuracy/top1) stacked: taller than wide
    assert png.shape[0] > png.shape[1] >= 400
    assert png.std() > 10


def test_unknown_keys_name_the_logged_ones(resumed_run, tmp_path):
    with pytest.raises(KeyError) as err:
        plot_training_curves(load_runs([str(resumed_run)]),
                             str(tmp_path / 'x.png'),
                             keys=['loss', 'accuracy/top5'])
    assert "No run logged ['accuracy/top5']" in err.value.args[0]
    assert "'accuracy/top1', 'loss', 'lr', 'time'" in err.value.args[0]
    assert not (tmp_path / 'x.png').exists()
